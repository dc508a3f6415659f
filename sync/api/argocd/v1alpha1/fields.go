package v1alpha1

import (
	"encoding/json"
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

func newFields(kind string, fs []Field) *Fields {
	t := &Fields{Kind: kind, byPath: map[string]Field{}, parent: map[string]bool{}, list: fs}
	for _, f := range fs {
		if _, dup := t.byPath[f.Path]; dup {
			panic("v1alpha1: field listed twice: " + f.Path)
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

// DecodeApplication reads an Application from JSON: every field is checked against
// ApplicationFields (refused or unknown fields fail, naming the field), then what keyway
// needs is validated.
func DecodeApplication(raw []byte) (*Application, error) {
	var app Application
	if err := decodeChecked(raw, ApplicationFields, &app); err != nil {
		return nil, err
	}
	if err := app.Validate(); err != nil {
		return nil, err
	}
	return &app, nil
}

// DecodeApplicationSet reads an ApplicationSet from JSON, checked against SetFields.
func DecodeApplicationSet(raw []byte) (*ApplicationSet, error) {
	var set ApplicationSet
	if err := decodeChecked(raw, SetFields, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

// DecodeAppProject reads an AppProject from JSON, checked against ProjectFields and for
// negated patterns, which keyway does not read.
func DecodeAppProject(raw []byte) (*AppProject, error) {
	var p AppProject
	if err := decodeChecked(raw, ProjectFields, &p); err != nil {
		return nil, err
	}
	negated := func(field, v string) error {
		if strings.HasPrefix(v, "!") {
			return fmt.Errorf("AppProject %s: %s %q: negated patterns are not supported by keyway: refused rather than ignored (ignoring one would allow what it denies)", p.Name, field, v)
		}
		return nil
	}
	for _, r := range p.Spec.SourceRepos {
		if err := negated("spec.sourceRepos", r); err != nil {
			return nil, err
		}
	}
	for _, d := range p.Spec.Destinations {
		for field, v := range map[string]string{"server": d.Server, "name": d.Name, "namespace": d.Namespace} {
			if err := negated("spec.destinations[]."+field, v); err != nil {
				return nil, err
			}
		}
	}
	return &p, nil
}

func decodeChecked(raw []byte, fields *Fields, into any) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("not a valid %s: %v", fields.Kind, err)
	}
	if err := fields.Check(m); err != nil {
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		return fmt.Errorf("%s %s: %w", fields.Kind, name, err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("not a valid %s: %v", fields.Kind, err)
	}
	return nil
}
