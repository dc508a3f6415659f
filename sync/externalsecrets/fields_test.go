package externalsecrets_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/keyway-dev/keyway/sync/api/apifields"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// TestEveryESOFieldClassified walks the v1 spec schemas of ESO v1.3.2's own CRDs
// (ExternalSecret, SecretStore, ClusterSecretStore, ClusterExternalSecret): every field is supported, of no
// effect or refused in keyway's tables, every table entry is a field of the CRD, and every
// refused field, set, is refused naming it — no field of ESO's API is silently ignored.
func TestEveryESOFieldClassified(t *testing.T) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(esoCRDs(t, "v1.3.2")), 1<<20)
	specs := map[string]map[string]any{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc == nil {
			continue
		}
		spec := doc["spec"].(map[string]any)
		kind := spec["names"].(map[string]any)["kind"].(string)
		for _, v := range spec["versions"].([]any) {
			if v := v.(map[string]any); v["name"] == "v1" {
				specs[kind] = v["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)["properties"].(map[string]any)["spec"].(map[string]any)
			}
		}
	}
	for kind, fields := range map[string]*apifields.Fields{"ExternalSecret": esv1.ExternalSecretFields, "SecretStore": esv1.SecretStoreFields, "ClusterSecretStore": esv1.SecretStoreFields, "ClusterExternalSecret": esv1.ClusterExternalSecretFields} {
		if specs[kind] == nil {
			t.Fatalf("no v1 %s in ESO's CRDs", kind)
		}
		problems, refused := fields.Audit(specs[kind])
		for _, p := range problems {
			t.Errorf("%s: %s", kind, p)
		}
		t.Logf("%s: %d fields listed, %d refused and checked", kind, len(fields.List()), refused)
	}
}

var updateDoc = flag.Bool("update-doc", false, "rewrite docs/eso-fields.md from the support tables")

// TestESOFieldsDoc: docs/eso-fields.md is the support tables (-update-doc rewrites it).
func TestESOFieldsDoc(t *testing.T) {
	const path = "../../docs/eso-fields.md"
	want := esv1.SupportTable()
	if *updateDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("docs/eso-fields.md differs from the support tables (%v): run go test ./sync/externalsecrets -run TestESOFieldsDoc -update-doc", err)
	}
}
