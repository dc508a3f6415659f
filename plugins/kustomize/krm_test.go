package kustomize

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
)

func TestResourceList(t *testing.T) {
	for name, in := range map[string]string{"empty": "", "a ConfigMap": "apiVersion: v1\nkind: ConfigMap\n", "garbage": "{{{"} {
		if _, err := ReadResourceList(strings.NewReader(in), t.TempDir(), manifest.Limits{}); !errors.Is(err, ErrNotResourceList) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	in := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n  data: {backend: file}\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: v}}\n"
	rl, err := ReadResourceList(strings.NewReader(in), t.TempDir(), manifest.Limits{})
	if err != nil || len(rl.Items) != 1 || rl.Config["backend"] != "file" {
		t.Fatalf("%v %+v", err, rl)
	}
	manifest.Set(rl.Items[0].Root, "changed", &yaml.Node{Kind: yaml.ScalarNode, Value: "yes"})
	var ok bytes.Buffer
	if err := rl.Write(&ok, nil); err != nil || !strings.Contains(ok.String(), "changed: yes") {
		t.Fatalf("a list without results carries its items as changed: %v\n%s", err, ok.String())
	}
	var out bytes.Buffer
	if err := rl.Write(&out, []Result{{Message: "m", Severity: "error", Field: "data.k"}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "changed") || !strings.Contains(out.String(), "results:") || !strings.Contains(out.String(), "path: data.k") {
		t.Fatalf("a failed list keeps its items as they came and has the results:\n%s", out.String())
	}
}
