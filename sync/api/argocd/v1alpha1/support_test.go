package v1alpha1_test

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"sort"
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

// sample is a value of the schema's type that is not its default.
func sample(s map[string]any) any {
	if props, ok := s["properties"].(map[string]any); ok && len(props) > 0 {
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		sort.Strings(names)
		return map[string]any{names[0]: sample(props[names[0]].(map[string]any))}
	}
	switch s["type"] {
	case "string":
		return "sample"
	case "boolean":
		return true
	case "integer", "number":
		return float64(1)
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			return []any{sample(items)}
		}
		return []any{"sample"}
	}
	return map[string]any{"sample": "value"}
}

// setPath puts v at path ("spec.generators[].matrix") in a new object of kind.
func setPath(kind, path string, v any) map[string]any {
	obj := map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": kind, "metadata": map[string]any{"name": "walk"}}
	var cur any = obj
	parts := strings.Split(path, ".")
	for i, part := range parts {
		list := strings.HasSuffix(part, "[]")
		name := strings.TrimSuffix(part, "[]")
		m := cur.(map[string]any)
		var next any = v
		if i < len(parts)-1 || list {
			next = map[string]any{}
		}
		if list {
			item := next
			if i == len(parts)-1 {
				item = v
			}
			m[name] = []any{item}
			cur = item
			continue
		}
		m[name] = next
		cur = next
	}
	return obj
}

// TestEveryFieldClassified walks the spec schemas of Argo CD's Application, ApplicationSet
// and AppProject CRDs: every field is in keyway's support table (or inside one taken
// whole), every table entry is a field of the CRD, and every refused field, set to a value
// that is not its default, is refused naming it — while its default passes. So no field
// of Argo CD's API is silently ignored.
func TestEveryFieldClassified(t *testing.T) {
	specs := crdSpecs(t)
	for kind, fields := range map[string]*v1alpha1.Fields{"Application": v1alpha1.ApplicationFields, "ApplicationSet": v1alpha1.SetFields, "AppProject": v1alpha1.ProjectFields} {
		t.Run(kind, func(t *testing.T) {
			inSchema := map[string]bool{"spec": true}
			refused := 0
			var walk func(path string, s map[string]any)
			walk = func(path string, s map[string]any) {
				if items, ok := s["items"].(map[string]any); ok && s["type"] == "array" {
					walk(path+"[]", items)
					return
				}
				props, _ := s["properties"].(map[string]any)
				for name, child := range props {
					p := path + "." + name
					inSchema[p] = true
					f, ok := fields.Lookup(p)
					if !ok {
						if !fields.Covered(p) {
							t.Errorf("%s: field %s of Argo CD's CRD is neither supported nor refused", kind, p)
						}
						continue
					}
					cs := child.(map[string]any)
					if f.Support == v1alpha1.Refused {
						refused++
						v := sample(cs)
						if err := fields.Check(setPath(kind, p, v)); err == nil || !strings.Contains(err.Error(), p) {
							t.Errorf("%s: %s set to %v: got %v, want it refused naming the field", kind, p, v, err)
						}
						continue
					}
					walk(p, cs)
				}
			}
			walk("spec", specs[kind])
			for _, f := range fields.List() {
				if f.Path != "operation" && !inSchema[f.Path] {
					t.Errorf("%s: the table lists %s, which Argo CD's CRD does not have", kind, f.Path)
				}
			}
			t.Logf("%s: %d fields in the CRD (outside subtrees taken whole), %d refused", kind, len(inSchema), refused)
		})
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
