package kube

import (
	"bytes"
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

// The cluster's marker: a ConfigMap created once every initial member has
// run. Its absence is what lets a fresh volume of an initial ordinal
// bootstrap; once it exists, a fresh volume only ever joins.

// MarkerName is the marker's name for StatefulSet set.
func MarkerName(set string) string { return set + "-cluster" }

// Formed reports whether the marker exists.
func (a *API) Formed(ctx context.Context, namespace, set string) (bool, error) {
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps/%s", a.Base, namespace, MarkerName(set))
	resp, err := a.do(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	switch resp.status {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("reading ConfigMap %s/%s: %d %s", namespace, MarkerName(set), resp.status, resp.body)
}

// MarkFormed creates the marker (an existing one is kept).
func (a *API) MarkFormed(ctx context.Context, namespace, set, clusterID string) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": MarkerName(set), "labels": map[string]string{"app.kubernetes.io/name": set}},
		"data":     map[string]string{"cluster-id": clusterID},
	})
	if err != nil {
		return err
	}
	resp, err := a.do(ctx, http.MethodPost, fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps", a.Base, namespace), body)
	if err != nil {
		return err
	}
	if resp.status == http.StatusCreated || resp.status == http.StatusOK || resp.status == http.StatusConflict {
		return nil
	}
	return fmt.Errorf("creating ConfigMap %s/%s: %d %s", namespace, MarkerName(set), resp.status, resp.body)
}

type answer struct {
	status int
	body   string
}

func (a *API) do(ctx context.Context, method, url string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, strings.TrimSpace(string(b))}, nil
}
