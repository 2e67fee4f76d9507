package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// API is how a pod reads its StatefulSet from the Kubernetes API server:
// with the service account Kubernetes mounts into every pod (the
// manifests' Role allows it to get its StatefulSet, nothing more).
type API struct {
	Base   string // https://host:port
	Token  string
	Client *http.Client
}

// Service account files, as Kubernetes mounts them.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster is the API as a pod reaches it.
func InCluster() (*API, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST and _PORT are unset")
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, fmt.Errorf("the pod's service account token: %w", err)
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("the cluster's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", saDir)
	}
	return &API{
		Base:  "https://" + net.JoinHostPort(host, port),
		Token: strings.TrimSpace(string(token)),
		Client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

// DesiredReplicas is the StatefulSet's spec.replicas: how many pods its
// owner wants, which a scale-down lowers before any pod is terminated.
func (a *API) DesiredReplicas(ctx context.Context, namespace, set string) (int, error) {
	url := fmt.Sprintf("%s/apis/apps/v1/namespaces/%s/statefulsets/%s", a.Base, namespace, set)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading StatefulSet %s/%s: %w", namespace, set, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reading StatefulSet %s/%s: %s: %s", namespace, set, resp.Status, strings.TrimSpace(string(body)))
	}
	var sts struct {
		Spec struct {
			Replicas *int `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &sts); err != nil {
		return 0, fmt.Errorf("StatefulSet %s/%s: %w", namespace, set, err)
	}
	if sts.Spec.Replicas == nil {
		return 1, nil // Kubernetes' default
	}
	return *sts.Spec.Replicas, nil
}
