package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/config"
	"github.com/kintsu/kintsu/internal/kube"
	"github.com/kintsu/kintsu/internal/server"
)

// manifests are deploy/kubernetes/kintsu.yaml's objects, each decoded
// strictly into the Kubernetes API's own Go types: an unknown or
// misplaced field, or a value of the wrong type, fails as the API server
// would refuse it.
type manifests struct {
	sts      *appsv1.StatefulSet
	services map[string]*corev1.Service
	pdb      *policyv1.PodDisruptionBudget
	sa       *corev1.ServiceAccount
	role     *rbacv1.Role
	binding  *rbacv1.RoleBinding
}

func loadManifests(t *testing.T) manifests {
	b, err := os.ReadFile("../../deploy/kubernetes/kintsu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := manifests{services: map[string]*corev1.Service{}}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		var svc *corev1.Service
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 StatefulSet":
			m.sts = &appsv1.StatefulSet{}
			obj = m.sts
		case "v1 Service":
			svc = &corev1.Service{}
			obj = svc
		case "policy/v1 PodDisruptionBudget":
			m.pdb = &policyv1.PodDisruptionBudget{}
			obj = m.pdb
		case "v1 ServiceAccount":
			m.sa = &corev1.ServiceAccount{}
			obj = m.sa
		case "rbac.authorization.k8s.io/v1 Role":
			m.role = &rbacv1.Role{}
			obj = m.role
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			m.binding = &rbacv1.RoleBinding{}
			obj = m.binding
		default:
			t.Fatalf("document %d: unexpected %s %s", i, head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, head.Kind, err)
		}
		if svc != nil {
			m.services[svc.Name] = svc
		}
	}
	if m.sts == nil || m.pdb == nil || m.sa == nil || m.role == nil || m.binding == nil || len(m.services) != 2 {
		t.Fatalf("missing objects: %+v", m)
	}
	return m
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podEnv is the container's env as Kubernetes gives it to pod kintsu-0
// in namespace ns, and expand replaces $(VAR) in its command as the
// kubelet does.
func podEnv(c corev1.Container, ns string) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = "kintsu-0"
		case e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = ns
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

func expand(args []string, env map[string]string) []string {
	var out []string
	for _, a := range args {
		out = append(out, regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(a, func(v string) string { return env[v[2:len(v)-1]] }))
	}
	return out
}

// mounted reports whether path is at or under one of c's mounts.
func mounted(c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

// TestKubernetesManifests checks deploy/kubernetes without a Kubernetes:
// every object has the API's schema; the objects agree with each other
// (selectors, the headless Service, the Role the preStop hook needs);
// and the pod's commands are ones this binary accepts, with ports,
// paths and mounts that match, making a node that validates.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	sts, pod := m.sts, m.sts.Spec.Template
	if !selects(sts.Spec.Selector.MatchLabels, pod.Labels) || !selects(m.pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Fatal("the StatefulSet's or the PDB's selector does not select the pods")
	}
	if m.pdb.Spec.MaxUnavailable == nil || m.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Fatal("the PDB must let one pod go at a time, no more")
	}
	headless := m.services[sts.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("serviceName %q: want a headless Service publishing pods before they are ready (peers give each other a quorum)", sts.Spec.ServiceName)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Fatal("pods must start in parallel: the first cannot be ready before a quorum of them runs")
	}
	for _, s := range m.services {
		if !selects(s.Spec.Selector, pod.Labels) {
			t.Errorf("Service %s selects no pod", s.Name)
		}
	}
	if pod.Spec.ServiceAccountName != m.sa.Name || m.binding.RoleRef.Name != m.role.Name ||
		len(m.binding.Subjects) != 1 || m.binding.Subjects[0].Name != m.sa.Name {
		t.Fatal("the pods' service account is not bound to the Role")
	}
	allows := func(group, resource, verb, name string) bool {
		for _, r := range m.role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
				(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
				return true
			}
		}
		return false
	}
	marker := kube.MarkerName(sts.Name)
	if !allows("apps", "statefulsets", "get", sts.Name) || !allows("", "configmaps", "get", marker) || !allows("", "configmaps", "create", marker) {
		t.Fatal("the Role does not let the pods read their StatefulSet, and read and create the cluster's marker")
	}
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		volumes[c.Name] = true
	}
	if len(pod.Spec.InitContainers) != 1 || len(pod.Spec.Containers) != 1 {
		t.Fatal("want one init container and one container")
	}
	initC, main := pod.Spec.InitContainers[0], pod.Spec.Containers[0]
	for _, c := range []corev1.Container{initC, main} {
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("container %s mounts %q, which is no volume", c.Name, vm.Name)
			}
		}
		if len(c.Command) < 3 || c.Command[0] != "/usr/local/bin/kintsu" || c.Command[1] != "kube" {
			t.Fatalf("container %s runs %q", c.Name, c.Command)
		}
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil || !bytes.Contains(dockerfile, []byte("COPY kintsu /usr/local/bin/kintsu")) {
		t.Fatal("the image does not hold the binary at /usr/local/bin/kintsu")
	}

	// The init container's command.
	const ns = "prod"
	var io kubeOpts
	fs, ix := initFlags(&io)
	caDir := &ix.caDir
	fs.SetOutput(new(strings.Builder))
	t.Setenv("POD_NAME", "kintsu-0")
	t.Setenv("POD_NAMESPACE", ns)
	if initC.Command[2] != "init" {
		t.Fatalf("the init container runs kube %s", initC.Command[2])
	}
	if err := fs.Parse(expand(initC.Command[3:], podEnv(initC, ns))); err != nil || fs.NArg() != 0 {
		t.Fatalf("kube init %q: %v", initC.Command[3:], err)
	}
	for _, p := range []string{*caDir, io.certsDir, io.passwordFile, io.volume} {
		if p == "" || !mounted(initC, p) {
			t.Errorf("the init container's %q is not mounted", p)
		}
	}

	// The container's command, and the server flags it makes.
	var so kubeOpts
	fs, bind := startFlags(&so)
	fs.SetOutput(new(strings.Builder))
	if main.Command[2] != "start" {
		t.Fatalf("the container runs kube %s", main.Command[2])
	}
	if err := fs.Parse(expand(main.Command[3:], podEnv(main, ns))); err != nil {
		t.Fatalf("kube start %q: %v", main.Command[3:], err)
	}
	if err := so.resolve(); err != nil {
		t.Fatal(err)
	}
	if so.volume != io.volume || so.certsDir != io.certsDir || so.service != io.service || so.initial != io.initial ||
		so.service != headless.Name || int(*sts.Spec.Replicas) < so.initial {
		t.Fatal("kube init and kube start disagree on the volume, certs, Service or initial nodes, or the StatefulSet has fewer pods than bootstrap")
	}
	for _, p := range []string{so.volume, so.certsDir} {
		if !mounted(main, p) {
			t.Errorf("the container's %q is not mounted", p)
		}
	}
	ports := map[string]int32{}
	for _, p := range main.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["resp"] != int32(so.respPort) || ports["peer"] != int32(so.peerPort) || ports["http"] != int32(so.httpPort) {
		t.Fatalf("container ports %v, kube start's %d/%d/%d", ports, so.respPort, so.peerPort, so.httpPort)
	}
	for _, s := range m.services {
		for _, p := range s.Spec.Ports {
			if ports[p.TargetPort.StrVal] == 0 || p.Port != ports[p.TargetPort.StrVal] {
				t.Errorf("Service %s port %s targets %q", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for what, probe := range map[string]*corev1.Probe{"readiness": main.ReadinessProbe, "liveness": main.LivenessProbe} {
		want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[what]
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.StrVal != "http" ||
			probe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s probe: want HTTPS GET %s on the admin port", what, want)
		}
	}
	d, err := kube.Decide(kube.Input{Ordinal: so.ordinal, Initial: so.initial, PeerAddr: func(o int) string { return so.addr(o, so.peerPort) }})
	if err != nil || d.Plan.Mode != kube.Bootstrap {
		t.Fatalf("pod 0's first start: %+v, %v", d, err)
	}
	args := append(so.serverArgs(d.Plan, *bind), fs.Args()...)
	var o serverOpts
	sfs := o.flags()
	sfs.SetOutput(new(strings.Builder))
	if _, err := config.Load(sfs, args, []string{"KINTSU_REQUIREPASS_FILE=" + podEnv(main, ns)["KINTSU_REQUIREPASS_FILE"]}); err != nil {
		t.Fatalf("kintsu server %q: %v", args, err)
	}
	if o.cfg.InitialCluster, err = server.ParseInitialCluster(o.initialCluster); err != nil {
		t.Fatal(err)
	}
	o.cfg.EnsureDefaults()
	if err := o.cfg.Validate(); err != nil {
		t.Fatalf("the pod's server flags make no valid node: %v", err)
	}
	if want := fmt.Sprintf("kintsu-0.kintsu.%s.svc.cluster.local:17001", ns); o.cfg.AdvertisedPeer() != want {
		t.Fatalf("pod 0 advertises %s, want %s", o.cfg.AdvertisedPeer(), want)
	}
	if o.cfg.RequirePassFile == "" || !mounted(main, o.cfg.RequirePassFile) {
		t.Fatalf("the node's password file %q is not mounted", o.cfg.RequirePassFile)
	}

	// The preStop hook's command.
	if main.Lifecycle == nil || main.Lifecycle.PreStop == nil || main.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no preStop hook")
	}
	hook := main.Lifecycle.PreStop.Exec.Command
	var po kubeOpts
	fs, px := prestopFlags(&po)
	timeout := &px.timeout
	fs.SetOutput(new(strings.Builder))
	if len(hook) < 3 || hook[0] != main.Command[0] || hook[2] != "prestop" {
		t.Fatalf("preStop runs %q", hook)
	}
	if err := fs.Parse(hook[3:]); err != nil || po.certsDir != so.certsDir || po.volume != so.volume || po.passwordFile == "" {
		t.Fatalf("kube prestop %q: %v", hook[3:], err)
	}
	if grace := pod.Spec.TerminationGracePeriodSeconds; grace == nil || float64(*grace) <= timeout.Seconds() {
		t.Fatal("the termination grace period must outlast the preStop hook's decommission timeout")
	}
}

// TestPrestopReplicationFactor: a scale-down's preStop compares the pods
// left with the replication factor; a partition with a replica moving (one
// more voter for a moment) must not pass for the factor, or the
// decommission is skipped and the pod's replicas are lost with it.
func TestPrestopReplicationFactor(t *testing.T) {
	moving := []api.PartitionStatus{{Replicas: []uint64{1, 2, 3}}, {Replicas: []uint64{1, 2, 3, 4}}, {Replicas: []uint64{2, 3, 4}}}
	if got := replicationFactor(api.StatusJSON{ReplicationFactor: 3, Partitions: moving}); got != 3 {
		t.Fatalf("reported factor 3, got %d", got)
	}
	if got := replicationFactor(api.StatusJSON{Partitions: moving}); got != 3 {
		t.Fatalf("an older node's status with one partition moving: got %d, want 3", got)
	}
	if got := replicationFactor(api.StatusJSON{Partitions: moving[1:]}); got != 3 {
		t.Fatalf("a tie: got %d, want the smaller count, 3", got)
	}
}
