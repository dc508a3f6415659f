package apply

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// IgnoreRule leaves fields of the objects it matches out of drift: JSON pointers, jq path
// expressions, and every field a named field manager owns.
type IgnoreRule struct {
	Group, Kind     string // glob patterns, as Argo CD matches them: "*" is any
	Name, Namespace string // empty: any
	Managers        []string
	pointers        [][]string
	jq              []*gojq.Code
}

// NewIgnoreRule compiles a rule for the objects of group and kind — glob patterns ("*",
// "apps", "*.k8s.io"), as Argo CD matches them — and of name and namespace, when set
// (exact, as Argo CD).
func NewIgnoreRule(group, kind, name, namespace string, pointers, jq, managers []string) (IgnoreRule, error) {
	rule := IgnoreRule{Group: group, Kind: kind, Name: name, Namespace: namespace, Managers: managers}
	for what, pattern := range map[string]string{"group": group, "kind": kind} {
		if _, err := path.Match(pattern, ""); err != nil {
			return IgnoreRule{}, fmt.Errorf("%s %q: not a glob pattern: %v", what, pattern, err)
		}
	}
	for _, p := range pointers {
		segs, err := parsePointer(p)
		if err != nil {
			return IgnoreRule{}, fmt.Errorf("jsonPointers: %w", err)
		}
		rule.pointers = append(rule.pointers, segs)
	}
	for _, e := range jq {
		if _, err := gojq.Parse(e); err != nil {
			return IgnoreRule{}, fmt.Errorf("jqPathExpressions %q: %v", e, err)
		}
		// Compiled as path(EXPR): the paths it selects, not their values.
		q, err := gojq.Parse("path(" + e + ")")
		if err != nil {
			return IgnoreRule{}, fmt.Errorf("jqPathExpressions %q: %v", e, err)
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return IgnoreRule{}, fmt.Errorf("jqPathExpressions %q: %v", e, err)
		}
		rule.jq = append(rule.jq, code)
	}
	return rule, nil
}

func (r IgnoreRule) matches(k Key) bool {
	group, _ := path.Match(r.Group, k.Group)
	kind, _ := path.Match(r.Kind, k.Kind)
	return group && kind && (r.Name == "" || r.Name == k.Name) && (r.Namespace == "" || r.Namespace == k.Namespace)
}

// parsePointer splits an RFC 6901 JSON pointer.
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q: a JSON pointer starts with /", p)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

// ignoredPaths lists the paths of obj the rules for k leave out of the diff.
func ignoredPaths(rules []IgnoreRule, k Key, obj map[string]any, live *unstructured.Unstructured) [][]any {
	var out [][]any
	for _, r := range rules {
		if !r.matches(k) {
			continue
		}
		for _, p := range r.pointers {
			path := make([]any, len(p))
			for i, s := range p {
				path[i] = s
			}
			out = append(out, path)
		}
		if len(r.jq) > 0 {
			generic := toGeneric(obj)
			for _, code := range r.jq {
				out = append(out, jqPaths(code, generic)...)
			}
		}
		if live != nil {
			for _, m := range r.Managers {
				out = append(out, managerPaths(live, m)...)
			}
		}
	}
	return out
}

// jqPaths runs a compiled path(EXPR) on v; errors (a path through a missing list) select
// nothing.
func jqPaths(code *gojq.Code, v any) [][]any {
	var out [][]any
	iter := code.Run(v)
	for {
		p, ok := iter.Next()
		if !ok {
			return out
		}
		if path, ok := p.([]any); ok {
			out = append(out, path)
		}
	}
}

func toGeneric(obj map[string]any) any {
	b, _ := json.Marshal(obj)
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

// getPath and deletePath walk a JSON value by a path of keys (strings) and indices.
func getPath(v any, path []any) (any, bool) {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			key := fmt.Sprint(p)
			next, ok := c[key]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, ok := index(p)
			if !ok || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func index(p any) (int, bool) {
	switch n := p.(type) {
	case int:
		return n, true
	case float64:
		return int(n), true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

func deletePath(v any, path []any) { atPath(v, path, nil, true) }

// replacePath replaces the value at path, where getPath finds one, with val.
func replacePath(v any, path []any, val any) { atPath(v, path, val, false) }

// atPath deletes (or replaces with val) what is at path. A list item deleted becomes nil,
// so the indices of later paths stay.
func atPath(v any, path []any, val any, remove bool) {
	if len(path) == 0 {
		return
	}
	parent, ok := getPath(v, path[:len(path)-1])
	if !ok {
		return
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		key := fmt.Sprint(last)
		if remove {
			delete(c, key)
		} else if _, ok := c[key]; ok {
			c[key] = val
		}
	case []any:
		if i, ok := index(last); ok && i >= 0 && i < len(c) {
			c[i] = val // nil when removed
		}
	}
}

// setPath sets path in v to val, creating maps on the way; false when a list is in the way.
func setPath(v map[string]any, path []any, val any) bool {
	cur := any(v)
	for i, p := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			key := fmt.Sprint(p)
			if last {
				c[key] = val
				return true
			}
			next, ok := c[key]
			if !ok {
				next = map[string]any{}
				c[key] = next
			}
			cur = next
		case []any:
			j, ok := index(p)
			if !ok || j < 0 || j >= len(c) {
				return false
			}
			if last {
				c[j] = val
				return true
			}
			cur = c[j]
		default:
			return false
		}
	}
	return false
}

// managerPaths lists the field paths a field manager owns in live (fields of maps; list
// items by position).
func managerPaths(live *unstructured.Unstructured, manager string) [][]any {
	var out [][]any
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != manager || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			continue
		}
		walkFields(fields, nil, live.Object, &out)
	}
	return out
}

func walkFields(fields map[string]any, prefix []any, value any, out *[][]any) {
	for k, sub := range fields {
		if k == "." {
			continue
		}
		var path []any
		switch {
		case strings.HasPrefix(k, "f:"):
			path = append(append([]any{}, prefix...), k[2:])
		case strings.HasPrefix(k, "k:"):
			list, ok := getPath(value, prefix)
			items, _ := list.([]any)
			if !ok {
				continue
			}
			var want map[string]any
			if json.Unmarshal([]byte(k[2:]), &want) != nil {
				continue
			}
			for i, it := range items {
				m, _ := it.(map[string]any)
				if m != nil && subset(want, m) {
					path = append(append([]any{}, prefix...), i)
				}
			}
			if path == nil {
				continue
			}
		default:
			continue
		}
		m, _ := sub.(map[string]any)
		if len(m) == 0 || (len(m) == 1 && m["."] != nil) {
			*out = append(*out, path)
			continue
		}
		walkFields(m, path, value, out)
	}
}

func subset(want, m map[string]any) bool {
	for k, v := range want {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}
