package helm

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/testenv"
)

// doc is one output document as a comparison sees it: the template it came from and its
// content.
type doc struct {
	Source string
	Object any
}

// helmTemplate runs the real helm CLI as Argo CD does: CRDs are included unless the
// application skips them.
func helmTemplate(t *testing.T, chart string, includeCRDs bool, args ...string) []doc {
	t.Helper()
	helm, err := testenv.Binary("helm")
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"template", "rel", chart, "--namespace", "apps"}, args...)
	if includeCRDs {
		args = append(args, "--include-crds")
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, errb.String())
	}
	var docs []doc
	source := ""
	for _, part := range strings.Split("\n"+out.String(), "\n---\n") {
		// A template's "---\n---" leaves its Source comment in an empty document of its own,
		// ahead of the content it names.
		if rest, ok := strings.CutPrefix(part, "# Source: "); ok {
			source, _, _ = strings.Cut(rest, "\n")
		}
		var obj any
		if err := yaml.Unmarshal([]byte(part), &obj); err != nil {
			t.Fatalf("helm output does not parse: %v\n%s", err, part)
		}
		if obj != nil {
			docs = append(docs, doc{source, obj})
		}
	}
	return docs
}

func keywayRender(t *testing.T, chart string, o Options) []doc {
	t.Helper()
	ds, err := Render(chart, o, manifest.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var docs []doc
	for _, d := range ds {
		var obj any
		if err := d.Root.Decode(&obj); err != nil {
			t.Fatal(err)
		}
		source, _, _ := strings.Cut(d.Source, " (")
		docs = append(docs, doc{source, obj})
	}
	return docs
}

// TestOrderMatchesHelm renders a chart with CRDs, several kinds in one template, JSON and
// comment-led documents, an empty template, a partial, notes, hooks (weighted, multi-event,
// unknown type) and a test hook, and requires the same documents in the same order as the
// real `helm template --include-crds`.
func TestOrderMatchesHelm(t *testing.T) {
	chart, _ := filepath.Abs("testdata/order")
	for _, tc := range []struct {
		name string
		args []string
		o    Options
	}{
		{"default", nil, Options{}},
		{"skip tests and CRDs", []string{"--skip-tests"}, Options{SkipTests: true, SkipCRDs: true}},
		{"set", []string{"--set", "replicas=3"}, Options{Set: []string{"replicas=3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := helmTemplate(t, chart, !tc.o.SkipCRDs, tc.args...)
			tc.o.ReleaseName, tc.o.Namespace = "rel", "apps"
			got := keywayRender(t, chart, tc.o)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("documents differ from helm template\n got: %s\nwant: %s", sources(got), sources(want))
				for i := range min(len(got), len(want)) {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("first difference at %d:\n got %v\nwant %v", i, got[i], want[i])
						break
					}
				}
			}
		})
	}
}

func sources(docs []doc) string {
	var b strings.Builder
	for _, d := range docs {
		m, _ := d.Object.(map[string]any)
		md, _ := m["metadata"].(map[string]any)
		b.WriteString("\n  " + d.Source + " " + toString(m["kind"]) + "/" + toString(md["name"]))
	}
	return b.String()
}

func toString(v any) string { s, _ := v.(string); return s }

// TestValuesSchemaEnforced: values that break values.schema.json fail the render, as in Helm.
func TestValuesSchemaEnforced(t *testing.T) {
	chart, _ := filepath.Abs("testdata/order")
	_, err := Render(chart, Options{Set: []string{"replicas=0"}}, manifest.Limits{}, nil)
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("err = %v, want a schema violation naming replicas", err)
	}
}

// TestBadHead: a document whose kind or annotations are not strings is refused with the
// template named, as Helm's sorter refuses it.
func TestBadHead(t *testing.T) {
	for name, tmpl := range map[string]string{
		"kind is a mapping":      "apiVersion: v1\nkind: {a: b}\nmetadata: {name: x}\n",
		"annotation is a list":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, annotations: {a: [1]}}\n",
		"document is a sequence": "- a\n- b\n",
	} {
		t.Run(name, func(t *testing.T) {
			chart := t.TempDir()
			write(t, filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: bad\nversion: 0.1.0\n")
			write(t, filepath.Join(chart, "templates", "x.yaml"), tmpl)
			_, err := Render(chart, Options{}, manifest.Limits{}, nil)
			var me *manifest.Error
			if !errors.As(err, &me) || !strings.HasPrefix(me.Source, "bad/templates/x.yaml") {
				t.Fatalf("err = %v, want a manifest error naming bad/templates/x.yaml", err)
			}
		})
	}
}

// TestOutputBounded: a chart whose output exceeds the stream limit is refused before parsing.
func TestOutputBounded(t *testing.T) {
	chart := t.TempDir()
	write(t, filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: big\nversion: 0.1.0\n")
	write(t, filepath.Join(chart, "templates", "x.yaml"), "{{ range until 2000 }}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-{{ . }}}\n{{ end }}")
	_, err := Render(chart, Options{}, manifest.Limits{MaxStreamBytes: 10_000}, nil)
	if err == nil || !strings.Contains(err.Error(), "larger than 10000 bytes") {
		t.Fatalf("err = %v, want the size limit", err)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
