package apply

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// ObjectDiff is what a sync would do to one object, as a unified diff of its YAML. A
// Secret's values never appear: each shows as (unchanged), (old value)/(new value),
// (added) or (removed).
type ObjectDiff struct {
	Key    string // group/kind/namespace/name
	Action string // create, update, prune
	Diff   string
}

// objectDiff renders the change from live to want (either may be nil). Fields whose value
// came from a secret reference (secrets) are masked whole on both sides, whatever modifier
// made them, as a Secret's data is.
func objectDiff(k Key, action string, live, want *unstructured.Unstructured, secrets [][]string) ObjectDiff {
	a, b := clean(live), clean(want)
	if k.Group == "" && k.Kind == "Secret" {
		maskSecrets(a, b)
	}
	for _, p := range secrets {
		maskField(a, b, p)
	}
	ya, yb := toYAML(a), toYAML(b)
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(ya), B: difflib.SplitLines(yb),
		FromFile: "live/" + k.String(), ToFile: "git/" + k.String(), Context: 3})
	return ObjectDiff{Key: k.String(), Action: action, Diff: d}
}

// clean drops what the server owns (status, managed fields, versions, timestamps).
func clean(u *unstructured.Unstructured) map[string]any {
	if u == nil {
		return nil
	}
	m, _ := toGeneric(u.Object).(map[string]any)
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, f := range []string{"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp"} {
			delete(md, f)
		}
		if ann, ok := md["annotations"].(map[string]any); ok {
			delete(ann, AnnotationApplied)
			delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			if len(ann) == 0 {
				delete(md, "annotations")
			}
		}
	}
	return m
}

// maskField replaces the value at path on each side with a word saying how the two
// compare.
func maskField(a, b map[string]any, path []string) {
	p := make([]any, len(path))
	for i, k := range path {
		p[i] = k
	}
	va, inA := getPath(a, p)
	vb, inB := getPath(b, p)
	switch {
	case inA && inB && reflect.DeepEqual(va, vb):
		replacePath(a, p, "(unchanged)")
		replacePath(b, p, "(unchanged)")
	case inA && inB:
		replacePath(a, p, "(old value)")
		replacePath(b, p, "(new value)")
	case inA:
		replacePath(a, p, "(secret value)")
	case inB:
		replacePath(b, p, "(secret value)")
	}
}

// maskSecrets replaces every value of data and stringData with a word saying how it
// compares across the two sides; values themselves never appear.
func maskSecrets(a, b map[string]any) {
	values := func(m map[string]any) map[string]string {
		out := map[string]string{}
		if m == nil {
			return out
		}
		for _, field := range []string{"data", "stringData"} {
			if d, ok := m[field].(map[string]any); ok {
				for k, v := range d {
					out[field+"/"+k] = fmt.Sprint(v)
				}
			}
		}
		return out
	}
	va, vb := values(a), values(b)
	mask := func(m map[string]any, mine, other map[string]string, missing, changed string) {
		if m == nil {
			return
		}
		for _, field := range []string{"data", "stringData"} {
			d, ok := m[field].(map[string]any)
			if !ok {
				continue
			}
			for k := range d {
				ov, present := other[field+"/"+k]
				switch {
				case !present:
					d[k] = missing
				case ov == mine[field+"/"+k]:
					d[k] = "(unchanged)"
				default:
					d[k] = changed
				}
			}
		}
	}
	mask(a, va, vb, "(removed)", "(old value)")
	mask(b, vb, va, "(added)", "(new value)")
}

func toYAML(m map[string]any) string {
	if m == nil {
		return ""
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

// Diffs lists what applying plan and pruning prune would change.
func Diffs(plan []*Planned, prune []Key) []ObjectDiff {
	var out []ObjectDiff
	for _, p := range plan {
		if p.IsHook() {
			continue
		}
		switch p.Action {
		case Create:
			want := p.Dry
			if want == nil {
				want = p.Obj
			}
			out = append(out, objectDiff(p.Key(), "create", nil, want, p.Secrets))
		case Update:
			out = append(out, objectDiff(p.Key(), "update", p.Live, p.Dry, p.Secrets))
		}
	}
	for _, k := range prune {
		out = append(out, ObjectDiff{Key: k.String(), Action: "prune", Diff: fmt.Sprintf("--- live/%s\n+++ (pruned)\n", k)})
	}
	slices.SortStableFunc(out, func(a, b ObjectDiff) int { return strings.Compare(a.Key, b.Key) })
	return out
}
