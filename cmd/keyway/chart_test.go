package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestHelmChart: examples/chart/keyway lints, renders, and every object it renders passes a
// server-side dry run against the real API server; its CRDs and plugin.yaml are the ones
// the other install paths use; the Deployments' arguments are flags keyway accepts.
func TestHelmChart(t *testing.T) {
	helm, err := testenv.Binary("helm")
	if err != nil {
		t.Skip(err)
	}
	for _, pair := range [][2]string{{"../../examples/chart/keyway/crds/crds.yaml", "../../examples/install/crds.yaml"}, {"../../examples/chart/keyway/files/plugin.yaml", "../../examples/argocd/plugin.yaml"}} {
		a, _ := os.ReadFile(pair[0])
		b, _ := os.ReadFile(pair[1])
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("%s differs from %s (make generate copies it)", pair[0], pair[1])
		}
	}
	home := t.TempDir()
	values := filepath.Join(home, "values.yaml")
	root, _ := os.ReadFile("../../examples/daemon/root-app.yaml")
	var rootApp map[string]any
	if err := sigsyaml.Unmarshal(root, &rootApp); err != nil {
		t.Fatal(err)
	}
	v, _ := sigsyaml.Marshal(map[string]any{
		"daemon":  map[string]any{"enabled": true, "apps": []any{rootApp}, "gitRewrites": []string{"https://github.com/your-org/=https://git.internal/mirror/"}, "webhookSecret": map[string]any{"existingSecret": "keyway-webhook"}},
		"argocd":  map[string]any{"plugin": map[string]any{"enabled": true}},
		"backend": map[string]any{"type": "vault", "vault": map[string]any{"address": "https://vault:8200", "role": "keyway"}},
	})
	_ = os.WriteFile(values, v, 0o644)
	helmRun := func(args ...string) string {
		cmd := exec.Command(helm, args...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	helmRun("lint", "../../examples/chart/keyway", "-f", values, "--strict")
	out := helmRun("template", "keyway", "../../examples/chart/keyway", "-n", "keyway-system", "--include-crds", "-f", values)
	docs, err := manifest.Read(strings.NewReader(out), "helm template", manifest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	monitors := helmRun("template", "keyway", "../../examples/chart/keyway", "-n", "keyway-system", "-f", values, "--set", "serviceMonitor.enabled=true", "--show-only", "templates/servicemonitor.yaml")
	if strings.Count(monitors, "kind: ServiceMonitor") != 2 {
		t.Fatalf("serviceMonitor.enabled renders:\n%s", monitors)
	}

	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	ctx := t.Context()
	kube := kubernetes.NewForConfigOrDie(env.Config)
	for _, ns := range []string{"keyway-system", "argocd"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var crds bytes.Buffer
	var objs []*unstructured.Unstructured
	kinds := map[string]int{}
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		var u unstructured.Unstructured
		if err := manifest.Decode(d, &u.Object); err != nil {
			t.Fatal(err)
		}
		kinds[u.GetKind()]++
		if u.GetKind() == "CustomResourceDefinition" {
			b, _ := manifest.EncodeYAML(d)
			crds.WriteString("---\n")
			crds.Write(b)
			continue
		}
		objs = append(objs, &u)
		if u.GetKind() == "Deployment" {
			var dep appsv1.Deployment
			b, _ := u.MarshalJSON()
			_ = sigsyaml.Unmarshal(b, &dep)
			args := dep.Spec.Template.Spec.Containers[0].Args
			var cmd interface{ ParseFlags([]string) error }
			switch args[0] {
			case "daemon":
				cmd = newDaemonCommand(&app{})
			case "controller":
				cmd = newControllerCommand(&app{})
			default:
				t.Fatalf("Deployment %s runs %q", u.GetName(), args[0])
			}
			if err := cmd.ParseFlags(args[1:]); err != nil {
				t.Fatalf("Deployment %s: %v", u.GetName(), err)
			}
		}
	}
	if kinds["CustomResourceDefinition"] != 5 || kinds["Deployment"] != 2 || kinds["ClusterRole"] != 2 {
		t.Fatalf("rendered kinds: %v", kinds)
	}
	if err := env.InstallCRDs(ctx, crds.Bytes()); err != nil {
		t.Fatal(err)
	}
	dc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn := dynamic.NewForConfigOrDie(env.Config)
	force := true
	for _, u := range objs {
		m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		var res dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			res = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		b, _ := u.MarshalJSON()
		if _, err := res.Patch(ctx, u.GetName(), types.ApplyPatchType, b, metav1.PatchOptions{FieldManager: "chart-test", Force: &force, DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("dry-run apply %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
}
