package externalsecrets_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/externalsecrets"
)

// esoCRDs fetches External Secrets Operator's own published CRDs at a version from its
// module, as the Go toolchain downloads it: not committed.
func esoCRDs(t *testing.T, version string) []byte {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/external-secrets/external-secrets@"+version).Output()
	if err != nil {
		t.Fatalf("go mod download: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %s", out)
	}
	var all []byte
	for _, name := range []string{"externalsecrets", "secretstores", "clustersecretstores", "clusterexternalsecrets"} {
		data, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crds", "bases", "external-secrets.io_"+name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, "---\n"...), data...)
	}
	return all
}

// TestSyncerWithESOCRDs: where ESO's own CRDs are installed instead of keyway's, the guide's
// manifests still sync (here through ESO's fake provider): as v1beta1 against v0.16.2, which
// serves v1 and v1beta1, and as v1 against v1.3.2, which serves v1 only.
func TestSyncerWithESOCRDs(t *testing.T) {
	for _, tc := range []struct{ eso, apiVersion string }{
		{"v0.16.2", "external-secrets.io/v1beta1"},
		{"v1.3.2", "external-secrets.io/v1"},
	} {
		t.Run(tc.eso, func(t *testing.T) { syncWithESOCRDs(t, tc.eso, tc.apiVersion) })
	}
}

func syncWithESOCRDs(t *testing.T, eso, apiVersion string) {
	ctx := t.Context()
	cluster, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	if err := cluster.InstallCRDs(ctx, esoCRDs(t, eso)); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cluster.Config)
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := `apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: vault-backend, namespace: shop}
spec:
  provider:
    fake:
      data:
      - key: database/credentials
        value: '{"password": "` + syncCanary + `-eso"}'
`
	for _, manifest := range []string{store, seedGuideES("shop")} {
		manifest = strings.ReplaceAll(manifest, "apiVersion: external-secrets.io/v1beta1", "apiVersion: "+apiVersion)
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
			t.Fatal(err)
		}
		if obj.GetAPIVersion() != apiVersion {
			t.Fatalf("manifest is %s, want %s", obj.GetAPIVersion(), apiVersion)
		}
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		if _, err := dyn.Resource(gv.WithResource(strings.ToLower(obj.GetKind())+"s")).Namespace("shop").Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("ESO's %s CRDs refuse %s: %v", eso, obj.GetKind(), err)
		}
	}
	if apiVersion == "external-secrets.io/v1" {
		// These CRDs are the ones installed: v1beta1 is not served.
		v1beta1 := schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1beta1", Resource: "externalsecrets"}
		if _, err := dyn.Resource(v1beta1).Namespace("shop").List(ctx, metav1.ListOptions{}); err == nil {
			t.Fatalf("ESO %s's CRDs serve v1beta1; the test expected v1 only", eso)
		}
	}
	s, err := externalsecrets.NewSyncer(cluster.Config, externalsecrets.SyncerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(runCtx) }()
	poll(t, "the Secret synced through ESO's CRDs", func() bool {
		sec, err := kube.CoreV1().Secrets("shop").Get(ctx, "database-credentials", metav1.GetOptions{})
		return err == nil && string(sec.Data["password"]) == syncCanary+"-eso"
	})
	poll(t, "Ready=True", func() bool {
		u, err := dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace("shop").Get(ctx, "database-credentials", metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		return len(conds) > 0 && conds[0].(map[string]any)["reason"] == "SecretSynced"
	})
	if apiVersion != "external-secrets.io/v1" {
		return
	}
	// ESO's CRDs keep fields keyway does not implement: each is refused by name, with a
	// condition, and nothing is written — never accepted and ignored.
	create := func(manifest string) {
		t.Helper()
		manifest = strings.ReplaceAll(manifest, "apiVersion: external-secrets.io/v1beta1", "apiVersion: "+apiVersion)
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
			t.Fatal(err)
		}
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		if _, err := dyn.Resource(gv.WithResource(strings.ToLower(obj.GetKind())+"s")).Namespace("shop").Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(gvr schema.GroupVersionResource, name string) string {
		u, err := dyn.Resource(gvr).Namespace("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		if len(conds) == 0 {
			return ""
		}
		c := conds[0].(map[string]any)
		return fmt.Sprint(c["status"], "/", c["reason"], ": ", c["message"])
	}
	create(strings.Replace(strings.Replace(seedGuideES("shop"), "name: database-credentials\n  namespace", "name: manifest\n  namespace", 1),
		"target:\n", "target:\n    manifest: {apiVersion: v1, kind: ConfigMap}\n", 1))
	poll(t, "target.manifest refused by name", func() bool {
		return strings.Contains(condition(externalsecrets.ExternalSecretGVR, "manifest"), "spec.target.manifest is not supported")
	})
	create(strings.Replace(strings.Replace(store, "name: vault-backend", "name: with-ca", 1), "  provider:\n    fake:", "  provider:\n    fake:\n      validationResult: 2", 1))
	poll(t, "a store field keyway does not read refused by name", func() bool {
		return strings.Contains(condition(externalsecrets.SecretStoreGVR, "with-ca"), "spec.provider.fake.validationResult is not supported")
	})
}
