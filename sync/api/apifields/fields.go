// Package apifields says, field by field, what keyway does with a peer's API (Argo CD's,
// External Secrets'): supported, of no effect, or refused — and checks objects against
// that, so no field is accepted and silently ignored.
package apifields

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Support is how keyway treats one field of Argo CD's API.
type Support int

const (
	// Supported fields mean what they mean in Argo CD.
	Supported Support = iota
	// NoEffect fields are accepted and change nothing, because what they govern does not
	// exist in keyway (Argo CD's UI roles, say); Note says why that is not silently wrong.
	NoEffect
	// Refused fields fail the object, naming the field, when set to anything but their
	// default (or a value in Allowed): keyway does not do what they ask, and ignoring them
	// would deploy something else than Argo CD deploys.
	Refused
)

func (s Support) String() string {
	return [...]string{"supported", "no effect", "refused"}[s]
}

// Field is one field of Argo CD's API and keyway's support for it. Path is the field's
// place under the object, list items written [] ("spec.generators[].list.elements"). A
// Supported or NoEffect field with no fields of its own in the table takes its whole
// value as it is (a map of labels, Helm values).
type Field struct {
	Path    string
	Support Support
	Note    string
	Allowed []string // for a Refused field: values that mean what keyway does anyway
}

// Fields lists how keyway treats each field of an API kind, and checks objects against it.
type Fields struct {
	Kind   string
	byPath map[string]Field
	parent map[string]bool // paths with fields of their own in the table
	list   []Field
}

// New makes the table of kind's fields; a path listed twice panics (a programming error).
func New(kind string, fs []Field) *Fields {
	t := &Fields{Kind: kind, byPath: map[string]Field{}, parent: map[string]bool{}, list: fs}
	for _, f := range fs {
		if _, dup := t.byPath[f.Path]; dup {
			panic("apifields: field listed twice: " + f.Path)
		}
		t.byPath[f.Path] = f
		for p := parentPath(f.Path); p != ""; p = parentPath(p) {
			t.parent[p] = true
		}
	}
	return t
}

// List is the table, in its order.
func (t *Fields) List() []Field { return slices.Clone(t.list) }

// Lookup returns the table's entry for path, if any.
func (t *Fields) Lookup(path string) (Field, bool) {
	f, ok := t.byPath[path]
	return f, ok
}

// Covered reports whether path is in the table or under a field taken whole.
func (t *Fields) Covered(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if f, ok := t.byPath[p]; ok {
			return p == path || (f.Support != Refused && !t.parent[p])
		}
	}
	return false
}

func parentPath(p string) string {
	if strings.HasSuffix(p, "[]") {
		return strings.TrimSuffix(p, "[]")
	}
	if i := strings.LastIndex(p, "."); i > 0 {
		return p[:i]
	}
	return ""
}

// Check walks obj (an object decoded from JSON) under its spec and its other top-level
// fields but metadata, kind, apiVersion and status, and refuses the first field that is
// Refused and set, or that Argo CD's API does not have, naming it.
func (t *Fields) Check(obj map[string]any) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
			continue
		}
		if err := t.check(k, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

func (t *Fields) check(path string, v any) error {
	f, ok := t.byPath[path]
	if !ok {
		if isZero(v) {
			return nil
		}
		return fmt.Errorf("%s is not a field of Argo CD's %s (a typo?); keyway refuses what it cannot read rather than ignore it", path, t.Kind)
	}
	if f.Support == Refused {
		if isZero(v) || (len(f.Allowed) > 0 && slices.Contains(f.Allowed, fmt.Sprint(v))) {
			return nil
		}
		msg := fmt.Sprintf("%s is not supported by keyway: refused rather than ignored", path)
		if f.Note != "" {
			msg += " (" + f.Note + ")"
		}
		return fmt.Errorf("%s", msg)
	}
	return t.walk(path, v)
}

// walk checks the fields of v, the value at path, when the table lists them.
func (t *Fields) walk(path string, v any) error {
	if !t.parent[path] {
		return nil // taken whole
	}
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := t.check(path+"."+k, v[k]); err != nil {
				return err
			}
		}
	case []any:
		for _, item := range v {
			if err := t.walk(path+"[]", item); err != nil {
				return err
			}
		}
	}
	return nil
}

// isZero reports whether v is a field's default: absent, null, false, 0, "" or empty.
func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return v == ""
	case float64:
		return v == 0
	case int64:
		return v == 0
	case int:
		return v == 0
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

// Audit checks the table against the spec schema of the peer's published CRD (the
// openAPIV3Schema's spec property): every field of the schema must be in the table or
// inside a field taken whole, every table entry must be a field of the schema (but extra,
// which the schema keeps outside spec), and every refused field, set to a value of its
// type that is not its default, must be refused naming it. It returns the problems, and
// how many refused fields it set.
func (t *Fields) Audit(spec map[string]any, extra ...string) (problems []string, refused int) {
	inSchema := map[string]bool{"spec": true}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if items, ok := s["items"].(map[string]any); ok && s["type"] == "array" {
			walk(path+"[]", items)
			return
		}
		props, _ := s["properties"].(map[string]any)
		for _, name := range sortedKeys(props) {
			p := path + "." + name
			inSchema[p] = true
			f, ok := t.Lookup(p)
			if !ok {
				if !t.Covered(p) {
					problems = append(problems, fmt.Sprintf("%s: field %s is neither supported nor refused", t.Kind, p))
				}
				continue
			}
			cs, _ := props[name].(map[string]any)
			if f.Support == Refused {
				refused++
				v := sample(cs)
				if err := t.Check(setPath(p, v)); err == nil || !strings.Contains(err.Error(), p+" ") {
					problems = append(problems, fmt.Sprintf("%s: %s set to %v: got %v, want it refused naming the field", t.Kind, p, v, err))
				}
				continue
			}
			walk(p, cs)
		}
	}
	walk("spec", spec)
	for _, f := range t.list {
		if !inSchema[f.Path] && !slices.Contains(extra, f.Path) {
			problems = append(problems, fmt.Sprintf("%s: the table lists %s, which the CRD does not have", t.Kind, f.Path))
		}
	}
	return problems, refused
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sample is a value of schema s's type that is not its default.
func sample(s map[string]any) any {
	if props, ok := s["properties"].(map[string]any); ok && len(props) > 0 {
		first := sortedKeys(props)[0]
		child, _ := props[first].(map[string]any)
		return map[string]any{first: sample(child)}
	}
	switch s["type"] {
	case "string":
		return "sample"
	case "boolean":
		return true
	case "integer", "number":
		return float64(7)
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			return []any{sample(items)}
		}
		return []any{"sample"}
	}
	return map[string]any{"sample": "value"}
}

// setPath makes an object holding v at path ("spec.generators[].matrix").
func setPath(path string, v any) map[string]any {
	obj := map[string]any{}
	cur := obj
	parts := strings.Split(path, ".")
	for i, part := range parts {
		name, list := strings.CutSuffix(part, "[]")
		if i == len(parts)-1 {
			if list {
				cur[name] = []any{v}
			} else {
				cur[name] = v
			}
			break
		}
		next := map[string]any{}
		if list {
			cur[name] = []any{next}
		} else {
			cur[name] = next
		}
		cur = next
	}
	return obj
}

// Markdown is the table as Markdown rows under a header: field, keyway's support, note.
func (t *Fields) Markdown() string {
	var b strings.Builder
	b.WriteString("| field | keyway | note |\n|---|---|---|\n")
	for _, f := range t.list {
		b.WriteString(f.Row())
	}
	return b.String()
}

// Row is the field as one Markdown table row.
func (f Field) Row() string {
	note := f.Note
	if len(f.Allowed) > 0 {
		note = strings.TrimPrefix(note+"; accepted: `"+strings.Join(f.Allowed, "`, `")+"`", "; ")
	}
	return fmt.Sprintf("| `%s` | %s | %s |\n", f.Path, f.Support, strings.ReplaceAll(note, "|", "\\|"))
}
