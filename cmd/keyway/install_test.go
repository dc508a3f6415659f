package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestArgoCDInstallOverlay builds the kustomizations that add the keyway sidecar
// (examples/argocd: argocd-cmp-server runs plugin.yaml; examples/argocd/serve: keyway serves
// the socket) with the real kustomize over Argo CD's stock install.yaml of the version they
// pin, checks the sidecar the way the repo-server needs it, and has a real kube-apiserver
// validate every object they produce (server-side apply, dry run).
func TestArgoCDInstallOverlay(t *testing.T) {
	kustomize, err := testenv.Binary("kustomize")
	if err != nil {
		t.Fatal(err)
	}
	stock, err := testenv.Binary("argocd-install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "argocd")
	copyTree(t, "../../examples/argocd", dir)
	build := func(t *testing.T, overlay string) map[string]*manifest.Document {
		t.Helper()
		kfile := filepath.Join(dir, overlay, "kustomization.yaml")
		k, err := os.ReadFile(kfile)
		if err != nil {
			t.Fatal(err)
		}
		const remote = "https://raw.githubusercontent.com/argoproj/argo-cd/v3.6.1/manifests/install.yaml"
		if !bytes.Contains(k, []byte(remote)) {
			t.Fatalf("%s no longer pins %s; build the test's copy from the version it names", kfile, remote)
		}
		copyFile(t, stock, filepath.Join(dir, overlay, "argocd-install.yaml"))
		if err := os.WriteFile(kfile, bytes.Replace(k, []byte(remote), []byte("argocd-install.yaml"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := runTool(t, kustomize, nil, filepath.Join(dir, overlay), "build", ".")
		if err != nil {
			t.Fatalf("kustomize build: %v\n%s", err, stderr)
		}
		docs, err := manifest.Read(strings.NewReader(out), "kustomize build", manifest.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		objs := map[string]*manifest.Document{}
		for _, d := range docs {
			objs[manifest.String(d.Root, "kind")+"/"+manifest.String(d.Root, "metadata", "name")] = d
		}
		t.Run("a real API server accepts it", func(t *testing.T) { dryRunApply(t, docs) })
		return objs
	}
	// sidecar returns the keyway container and the paths it mounts.
	sidecar := func(t *testing.T, objs map[string]*manifest.Document) (*yaml.Node, map[string]bool) {
		t.Helper()
		dep := objs["Deployment/argocd-repo-server"]
		if dep == nil {
			t.Fatal("no argocd-repo-server Deployment")
		}
		var keyway *yaml.Node
		repoServer := false
		for _, c := range manifest.Get(dep.Root, "spec", "template", "spec", "containers").Content {
			switch manifest.String(c, "name") {
			case "argocd-repo-server":
				repoServer = true
			case "keyway":
				keyway = c
			}
		}
		if !repoServer || keyway == nil {
			t.Fatalf("containers: repo-server %v, keyway %v", repoServer, keyway != nil)
		}
		if got := manifest.String(keyway, "securityContext", "runAsUser"); got != "999" {
			t.Errorf("sidecar runAsUser = %s, want 999", got)
		}
		mounts := map[string]bool{}
		for _, m := range manifest.Get(keyway, "volumeMounts").Content {
			mounts[manifest.String(m, "mountPath")] = true
		}
		if objs["ClusterRoleBinding/argocd-repo-server-keyway-auth-delegator"] == nil {
			t.Errorf("no auth-delegator binding for Vault's Kubernetes auth")
		}
		if objs["ConfigMap/keyway-config"] == nil {
			t.Errorf("no keyway-config ConfigMap")
		}
		return keyway, mounts
	}

	t.Run("argocd-cmp-server", func(t *testing.T) {
		objs := build(t, ".")
		c, mounts := sidecar(t, objs)
		if got := manifest.Get(c, "command").Content[0].Value; got != "/var/run/argocd/argocd-cmp-server" {
			t.Errorf("sidecar command = %q, want Argo CD's cmp-server", got)
		}
		for _, p := range []string{"/var/run/argocd", "/home/argocd/cmp-server/plugins", "/home/argocd/cmp-server/config/plugin.yaml", "/tmp"} {
			if !mounts[p] {
				t.Errorf("the sidecar does not mount %s", p)
			}
		}
		plugin, _ := os.ReadFile("../../examples/argocd/plugin.yaml")
		if got := manifest.String(objs["ConfigMap/keyway-plugin"].Root, "data", "plugin.yaml"); got != string(plugin) {
			t.Errorf("ConfigMap keyway-plugin does not carry plugin.yaml:\n%s", got)
		}
	})
	t.Run("keyway argocd serve", func(t *testing.T) {
		objs := build(t, "serve")
		c, mounts := sidecar(t, objs)
		args := manifest.Get(c, "args")
		if args == nil || len(args.Content) < 4 || args.Content[0].Value != "argocd" || args.Content[1].Value != "serve" ||
			args.Content[3].Value != "/home/argocd/cmp-server/plugins/keyway-v1.sock" {
			t.Errorf("sidecar args do not serve the plugins socket: %v", args)
		}
		for _, p := range []string{"/home/argocd/cmp-server/plugins", "/tmp"} {
			if !mounts[p] {
				t.Errorf("the sidecar does not mount %s", p)
			}
		}
	})
}

// dryRunApply has a real kube-apiserver validate every object: server-side apply, dry run.
func dryRunApply(t *testing.T, docs []*manifest.Document) {
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	ctx := t.Context()
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(env.Config)))
	dyn := dynamic.NewForConfigOrDie(env.Config)
	for _, d := range docs {
		var buf bytes.Buffer
		if err := manifest.Encode(&buf, []*manifest.Document{d}, manifest.JSON); err != nil {
			t.Fatal(err)
		}
		var obj unstructured.Unstructured
		if err := sigsyaml.Unmarshal(buf.Bytes(), &obj.Object); err != nil {
			t.Fatal(err)
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk, obj.GetName(), err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Apply(ctx, obj.GetName(), &obj, metav1.ApplyOptions{FieldManager: "keyway-test", Force: true, DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("%s %s refused: %v", gvk.Kind, obj.GetName(), err)
		}
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
