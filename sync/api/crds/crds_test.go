package crds_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/api/crds"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// TestGenerated: the committed CRDs are what controller-gen makes of sync/api's types now,
// the SealedSecret CRD is the one examples/sealedsecret installs, and `keyway crds`
// (crds.All) is examples/install/crds.yaml.
func TestGenerated(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "tool", "controller-gen", "crd:crdVersions=v1", "paths=./sync/api/...", "output:crd:dir="+out)
	cmd.Dir = "../../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	generated, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	if len(generated) != 4 { // ExternalSecret, SecretStore, ClusterSecretStore, ClusterExternalSecret
		t.Fatalf("controller-gen made %d CRDs, want 4", len(generated))
	}
	for _, g := range generated {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Base(g))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make generate", filepath.Base(g))
		}
	}
	ss, _ := os.ReadFile("../../../examples/sealedsecret/crd.yaml")
	if got, _ := os.ReadFile("bitnami.com_sealedsecrets.yaml"); !bytes.Equal(got, ss) {
		t.Error("bitnami.com_sealedsecrets.yaml differs from examples/sealedsecret/crd.yaml")
	}
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile("../../../examples/install/crds.yaml"); !bytes.Equal(all, want) {
		t.Error("examples/install/crds.yaml differs from `keyway crds`: run make generate")
	}
}

// seedGuide is the ExternalSecret of the guide our users follow, verbatim: v1beta1.
const seedGuide = `apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: database-credentials
  namespace: default
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: vault-backend
    kind: SecretStore
  target:
    name: database-credentials
  data:
  - secretKey: password
    remoteRef:
      key: database/credentials
      property: password
`

const store = `apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: vault-backend
  namespace: default
spec:
  provider:
    vault:
      server: "http://vault.vault:8200"
      path: secret
      version: v2
      auth:
        kubernetes:
          mountPath: kubernetes
          role: external-secrets
`

// TestServedByTheAPIServer installs `keyway crds` into a real API server: the guide's
// v1beta1 manifests are accepted unchanged and read back as v1 with the defaults ESO
// applies; invalid values are refused by the schema.
func TestServedByTheAPIServer(t *testing.T) {
	ctx := t.Context()
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, all); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	create := func(manifest, resource string) (*unstructured.Unstructured, error) {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
			t.Fatal(err)
		}
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		return dyn.Resource(gv.WithResource(resource)).Namespace(obj.GetNamespace()).Create(ctx, &obj, metav1.CreateOptions{})
	}
	if _, err := create(store, "secretstores"); err != nil {
		t.Fatalf("the guide's SecretStore: %v", err)
	}
	if _, err := create(seedGuide, "externalsecrets"); err != nil {
		t.Fatalf("the guide's ExternalSecret: %v", err)
	}
	v1 := schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	got, err := dyn.Resource(v1).Namespace("default").Get(ctx, "database-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	policy, _, _ := unstructured.NestedString(got.Object, "spec", "target", "creationPolicy")
	deletion, _, _ := unstructured.NestedString(got.Object, "spec", "target", "deletionPolicy")
	key, _, _ := unstructured.NestedString(got.Object, "spec", "data", "0", "remoteRef", "key")
	data, _, _ := unstructured.NestedSlice(got.Object, "spec", "data")
	if policy != "Owner" || deletion != "Retain" || len(data) != 1 {
		t.Fatalf("read back as v1: creationPolicy %q deletionPolicy %q data %v", policy, deletion, data)
	}
	if ref := data[0].(map[string]any)["remoteRef"].(map[string]any); ref["key"] != "database/credentials" || ref["property"] != "password" || ref["decodingStrategy"] != "None" {
		t.Fatalf("remoteRef read back as %v (%q)", ref, key)
	}
	bad := bytes.ReplaceAll([]byte(seedGuide), []byte("kind: SecretStore"), []byte("kind: NotAStore"))
	bad = bytes.ReplaceAll(bad, []byte("name: database-credentials\n  namespace"), []byte("name: bad\n  namespace"))
	if _, err := create(string(bad), "externalsecrets"); err == nil {
		t.Fatal("secretStoreRef.kind NotAStore was accepted")
	}
}
