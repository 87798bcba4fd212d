package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of deploy/k8s, by kind.
type manifests struct {
	namespaces   []*corev1.Namespace
	configMaps   []*corev1.ConfigMap
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
}

// loadManifests decodes every document of every file in dir into its Kubernetes API type,
// strictly: a field the type does not have, a duplicate field or a value of the wrong type
// fails, as kubectl apply --validate=strict would.
func loadManifests(t *testing.T, dir string) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			kinds := map[string]func() any{
				"v1 Namespace":                  func() any { return add(&m.namespaces) },
				"v1 ConfigMap":                  func() any { return add(&m.configMaps) },
				"v1 Service":                    func() any { return add(&m.services) },
				"apps/v1 StatefulSet":           func() any { return add(&m.statefulSets) },
				"policy/v1 PodDisruptionBudget": func() any { return add(&m.pdbs) },
			}
			newObj, ok := kinds[head.APIVersion+" "+head.Kind]
			if !ok {
				t.Fatalf("%s, document %d: %s %s is not a kind this test checks", f, i+1, head.APIVersion, head.Kind)
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s, document %d (%s): %v", f, i+1, head.Kind, err)
			}
		}
	}
	return m
}

// add appends a new object to list and returns it.
func add[T any](list *[]*T) *T {
	o := new(T)
	*list = append(*list, o)
	return o
}

func one[T any](t *testing.T, kind string, objs []T) T {
	t.Helper()
	if len(objs) != 1 {
		t.Fatalf("%d %s objects, want 1", len(objs), kind)
	}
	return objs[0]
}

// The Kubernetes example: each file decodes strictly into the API types, and the objects fit
// together and with the herd config they carry: pod names are server names, each server's
// address is its pod's name in the headless Service, probes and scrape annotations use the
// admin port of the config.
func TestKubernetes(t *testing.T) {
	m := loadManifests(t, "k8s")
	ns := one(t, "Namespace", m.namespaces).Name
	cm := one(t, "ConfigMap", m.configMaps)
	sts := one(t, "StatefulSet", m.statefulSets)
	pdb := one(t, "PodDisruptionBudget", m.pdbs)
	for _, o := range []struct{ kind, name, ns string }{{"ConfigMap", cm.Name, cm.Namespace}, {"StatefulSet", sts.Name, sts.Namespace}, {"PodDisruptionBudget", pdb.Name, pdb.Namespace}} {
		if o.ns != ns {
			t.Errorf("%s %s is in namespace %q, want %q", o.kind, o.name, o.ns, ns)
		}
		for _, msg := range validation.IsDNS1123Label(o.name) {
			t.Errorf("%s name %q: %s", o.kind, o.name, msg)
		}
	}

	// The StatefulSet and its pods.
	pod := sts.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if sel := sts.Spec.Selector; sel == nil || !labels.SelectorFromSet(sel.MatchLabels).Matches(podLabels) {
		t.Errorf("the StatefulSet's selector does not match its pods")
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: with OrderedReady, a pod waits for the one before to be ready, which needs its links to the ones after", sts.Spec.PodManagementPolicy)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("the pods may run as root: set runAsNonRoot")
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("the container should not escalate privileges and should have a read-only root")
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= graceOf(t, c.Args) {
		t.Errorf("terminationGracePeriodSeconds is not longer than -grace %v: SIGKILL would cut the graceful stop", graceOf(t, c.Args))
	}
	if len(c.Args) < 2 || c.Args[0] != "serve" || c.Args[len(c.Args)-1] != "$(POD_NAME)" {
		t.Errorf("args %q: want serve ... $(POD_NAME), each pod the server named as itself", c.Args)
	}
	podName := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
	if podName < 0 {
		t.Errorf("no POD_NAME from metadata.name in the container's env")
	}

	// The config it serves: the ConfigMap, mounted where -config reads it.
	i := slices.Index(c.Args, "-config")
	if i < 0 {
		t.Fatalf("args %q: no -config", c.Args)
	}
	configPath := c.Args[i+1]
	var mounted string
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(configPath, vm.MountPath+"/") {
			for _, v := range pod.Spec.Volumes {
				if v.Name == vm.Name && v.ConfigMap != nil {
					mounted = v.ConfigMap.Name
				}
			}
		}
	}
	if mounted != cm.Name {
		t.Fatalf("-config %s is not in a volume of ConfigMap %s", configPath, cm.Name)
	}
	key := filepath.Base(configPath)
	cfg := parseConfig(t, []byte(cm.Data[key]), "ConfigMap "+cm.Name+" "+key)
	if !cfg.Log.Stderr() {
		t.Errorf("the config's log.dir is %q: want \"-\", so that kubectl logs shows them", cfg.Log.Dir)
	}

	// The headless Service the pods are named in.
	var headless, clients int
	for _, svc := range m.services {
		if svc.Namespace != ns {
			t.Errorf("Service %s is in namespace %q, want %q", svc.Name, svc.Namespace, ns)
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s does not select the herd's pods", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.StrVal == "" || ports[p.TargetPort.StrVal] == 0 {
				t.Errorf("Service %s port %s: target %q is not a named port of the container", svc.Name, p.Name, p.TargetPort.String())
			}
		}
		if svc.Name != sts.Spec.ServiceName {
			clients++
			continue
		}
		headless++
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s, the StatefulSet's, is not headless", svc.Name)
		}
		if !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s does not publish pods before they are ready: a server is ready once its links are up, which needs its neighbours' names", svc.Name)
		}
	}
	if headless != 1 {
		t.Errorf("no Service named %q (the StatefulSet's serviceName)", sts.Spec.ServiceName)
	}

	// Pod names are server names, and addresses the pods' names in the Service.
	if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != len(cfg.Servers) {
		t.Fatalf("replicas %v, but the config has %d servers", sts.Spec.Replicas, len(cfg.Servers))
	}
	for k, s := range cfg.Servers {
		name := fmt.Sprintf("%s-%d", sts.Name, k)
		if s.Name != name {
			t.Errorf("server %d is %q, want %q, its pod's name", k, s.Name, name)
		}
		if want := fmt.Sprintf("%s.%s.%s.svc.cluster.local:%d", name, sts.Spec.ServiceName, ns, ports["client"]); s.Addr != want {
			t.Errorf("server %s addr %q, want %q", s.Name, s.Addr, want)
		}
		if s.AdminAddr == "" || port(t, s.AdminAddr) != int(ports["admin"]) {
			t.Errorf("server %s admin_addr %q is not on the container's admin port %d", s.Name, s.AdminAddr, ports["admin"])
		}
		if len(s.Peers) == 0 {
			t.Errorf("server %s has no neighbour", s.Name)
		}
	}
	if ports["peer"] != ports["client"]+10000 {
		t.Errorf("peer port %d, want the client port + 10000", ports["peer"])
	}

	// Probes and scraping on the admin listener.
	for _, p := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "admin" {
			t.Errorf("%s probe: want GET %s on the admin port", p.kind, p.path)
		}
	}
	ann := pod.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != fmt.Sprint(ports["admin"]) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v: want the admin port's /metrics", ann)
	}
	for _, r := range []string{"cpu", "memory"} {
		if _, ok := c.Resources.Requests[corev1.ResourceName(r)]; !ok {
			t.Errorf("no %s request", r)
		}
	}

	// The budget: one server away at a time.
	if pdb.Spec.Selector == nil || !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("the PodDisruptionBudget does not select the herd's pods")
	}
	if u := pdb.Spec.MaxUnavailable; u == nil || u.IntValue() != 1 {
		t.Errorf("the PodDisruptionBudget lets %v pods go at once, want 1", u)
	}
	if bytes.Contains([]byte(cm.Data[key]), []byte("key =")) {
		t.Errorf("the ConfigMap holds a Places key: it belongs in the herd-places Secret")
	}
}
