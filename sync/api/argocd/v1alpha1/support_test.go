package v1alpha1_test

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite docs/argocd-fields.md from the support tables")

// crdSpecs reads the spec schemas of Argo CD's CRDs from its stock install.yaml (fetched by
// `make testenv`, as the Argo CD install test uses it).
func crdSpecs(t *testing.T) map[string]map[string]any {
	t.Helper()
	p, err := testenv.Binary("argocd-install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 1<<20)
	out := map[string]map[string]any{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc["kind"] != "CustomResourceDefinition" {
			continue
		}
		spec := doc["spec"].(map[string]any)
		kind := spec["names"].(map[string]any)["kind"].(string)
		version := spec["versions"].([]any)[0].(map[string]any)
		schema := version["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
		out[kind] = schema["properties"].(map[string]any)["spec"].(map[string]any)
	}
	for _, k := range []string{"Application", "ApplicationSet", "AppProject"} {
		if out[k] == nil {
			t.Fatalf("no %s CRD in %s", k, p)
		}
	}
	return out
}

// TestEveryFieldClassified walks the spec schemas of Argo CD's Application, ApplicationSet
// and AppProject CRDs: every field is in keyway's support table (or inside one taken
// whole), every table entry is a field of the CRD, and every refused field, set to a value
// that is not its default, is refused naming it. So no field of Argo CD's API is silently
// ignored.
func TestEveryFieldClassified(t *testing.T) {
	specs := crdSpecs(t)
	for kind, fields := range map[string]*v1alpha1.Fields{"Application": v1alpha1.ApplicationFields, "ApplicationSet": v1alpha1.SetFields, "AppProject": v1alpha1.ProjectFields} {
		problems, refused := fields.Audit(specs[kind], "operation")
		for _, p := range problems {
			t.Error(p)
		}
		t.Logf("%s: %d fields listed, %d refused and checked", kind, len(fields.List()), refused)
	}
}

func check(t *testing.T, fields *v1alpha1.Fields, yamlDoc string) error {
	t.Helper()
	raw, err := utilyaml.ToJSON([]byte(yamlDoc))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return fields.Check(m)
}

// TestFieldChecks: defaults of refused fields pass, allowed values pass, typos and other
// values fail naming the field; sync options are checked one by one.
func TestFieldChecks(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		refused string // "" when accepted
	}{
		{`spec: {source: {repoURL: r, kustomize: {}, directory: {recurse: false, jsonnet: {}}}}`, ""},
		{`spec: {source: {repoURL: r, kustomize: {namePrefix: p-}}}`, "spec.source.kustomize.namePrefix"},
		{`spec: {source: {repoURL: r, plugin: {name: keyway-v1}}}`, ""},
		{`spec: {source: {repoURL: r, plugin: {name: argocd-vault-plugin}}}`, "spec.source.plugin.name"},
		{`spec: {source: {repoURL: r, helm: {version: v3, skipCrds: true}}}`, ""},
		{`spec: {source: {repoURL: r, helm: {version: v2}}}`, "spec.source.helm.version"},
		{`spec: {source: {repoURL: r, directory: {jsonnet: {tlas: [{name: a, value: b}]}}}}`, "spec.source.directory.jsonnet"},
		{`spec: {sourc: {repoURL: r}}`, "spec.sourc"},
		{`spec: {info: [{name: a, value: b}], revisionHistoryLimit: 3}`, ""},
		{`spec: {syncPolicy: {managedNamespaceMetadata: {labels: {a: b}}, retry: {refresh: true}}}`, ""},
		{`status: {sync: {status: Synced}}`, ""},
		{`operation: {sync: {revision: HEAD}}`, "operation"},
	} {
		err := check(t, v1alpha1.ApplicationFields, tc.doc)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: %v", tc.doc, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused+" ")):
			t.Errorf("%s: got %v, want %s refused", tc.doc, err, tc.refused)
		}
	}
	if err := check(t, v1alpha1.ProjectFields, `spec: {syncWindows: [{kind: deny, schedule: "* * * * *", duration: 1h}]}`); err == nil || !strings.Contains(err.Error(), "spec.syncWindows") {
		t.Errorf("a deny sync window: %v", err)
	}
	if err := check(t, v1alpha1.ProjectFields, `spec: {clusterResourceBlacklist: [{group: "", kind: Namespace, name: "kube-*"}]}`); err == nil || !strings.Contains(err.Error(), "clusterResourceBlacklist[].name") {
		t.Errorf("a resource list entry with a name: %v", err)
	}
	if _, err := v1alpha1.DecodeAppProject([]byte(`{"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject","metadata":{"name":"p"},"spec":{"sourceRepos":["*","!https://evil"]}}`)); err == nil || !strings.Contains(err.Error(), "negated") {
		t.Errorf("a negated source repository: %v", err)
	}
	for option, ok := range map[string]bool{"CreateNamespace=true": true, "prunelast=true": true, "SkipDryRunOnMissingResource=true": false, "Foo=bar": false, " ": true} {
		if err := v1alpha1.CheckSyncOption("here", option); (err == nil) != ok {
			t.Errorf("sync option %q: %v", option, err)
		}
	}
}

// TestFieldsDoc: docs/argocd-fields.md is the support tables (go test
// ./sync/api/argocd/v1alpha1 -run TestFieldsDoc -update-doc rewrites it).
func TestFieldsDoc(t *testing.T) {
	const path = "../../../../docs/argocd-fields.md"
	want := v1alpha1.SupportTable()
	if *updateDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/argocd-fields.md differs from the support tables: run go test ./sync/api/argocd/v1alpha1 -run TestFieldsDoc -update-doc")
	}
}
