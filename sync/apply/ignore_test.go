package apply

import (
	"testing"

	"github.com/keyway-dev/keyway/internal/testenv"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(t *testing.T, y string) *unstructured.Unstructured { return testenv.Object(t, y) }

func TestIgnoreDifferences(t *testing.T) {
	var rules []IgnoreRule
	for _, r := range []struct{ pointers, jq, managers []string }{
		{pointers: []string{"/spec/replicas"}},
		{jq: []string{`.spec.template.spec.containers[] | select(.name == "sidecar") | .image`}},
		{managers: []string{"hpa"}},
	} {
		rule, err := NewIgnoreRule("apps", "Deployment", "", "", r.pointers, r.jq, r.managers)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rule)
	}
	live := obj(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, managedFields: [{manager: hpa, operation: Update, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:minReadySeconds": {}}}}]},
  spec: {replicas: 5, minReadySeconds: 9, template: {spec: {containers: [{name: app, image: a:1}, {name: sidecar, image: s:2}]}}}}`)
	dry := obj(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {replicas: 2, minReadySeconds: 0, template: {spec: {containers: [{name: app, image: a:1}, {name: sidecar, image: s:1}]}}}}`)
	k := KeyOf(live)
	if drifted(rules, k, live, dry) {
		t.Fatal("ignored fields counted as drift")
	}
	unstructured.SetNestedField(dry.Object, "a:2", "spec", "template", "spec", "containers") // replaces the list: drift
	if !drifted(rules, k, live, dry) {
		t.Fatal("a real change was ignored")
	}
	if _, err := NewIgnoreRule("", "X", "", "", nil, []string{".a[ | "}, nil); err == nil {
		t.Fatal("a bad jq expression compiled")
	}
	if _, err := NewIgnoreRule("", "X", "", "", []string{"spec"}, nil, nil); err == nil {
		t.Fatal("a JSON pointer without / compiled")
	}
	// RespectIgnoreDifferences: the desired object takes the live replica count.
	desired := obj(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {replicas: 2}}`)
	got := withLiveValues(rules[:1], k, desired, live)
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 5 {
		t.Fatalf("replicas %d, want the live 5", r)
	}
}

// TestIgnoreRuleMatches: group and kind are globs, as Argo CD matches them (its documented
// `group: '*'`, `kind: '*'`); name and namespace are exact when set.
func TestIgnoreRuleMatches(t *testing.T) {
	deploy := Key{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}
	cm := Key{Kind: "ConfigMap", Namespace: "shop", Name: "settings"}
	for _, tc := range []struct {
		group, kind, name, namespace string
		key                          Key
		want                         bool
	}{
		{"*", "*", "", "", deploy, true},
		{"*", "*", "", "", cm, true},
		{"apps", "Deployment", "", "", deploy, true},
		{"apps", "Deployment", "", "", cm, false},
		{"", "ConfigMap", "", "", cm, true},
		{"*", "Config*", "", "", cm, true},
		{"apps", "*", "web", "", deploy, true},
		{"apps", "*", "api", "", deploy, false},
		{"*", "*", "", "other", deploy, false},
		{"*", "*", "web", "shop", deploy, true},
	} {
		rule, err := NewIgnoreRule(tc.group, tc.kind, tc.name, tc.namespace, []string{"/spec"}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := rule.matches(tc.key); got != tc.want {
			t.Errorf("rule %s/%s name %q namespace %q on %v: %v, want %v", tc.group, tc.kind, tc.name, tc.namespace, tc.key, got, tc.want)
		}
	}
	if _, err := NewIgnoreRule("[", "X", "", "", nil, nil, nil); err == nil {
		t.Fatal("a malformed group pattern compiled")
	}
}
