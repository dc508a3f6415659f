package reference

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrKeyMissing means the secret exists but has no value at the placeholder's key or pointer.
var ErrKeyMissing = errors.New("key missing")

// Select picks the placeholder's value out of a fetched secret's data. whole, when not nil,
// is the secret as a single value, selected by a URI reference without a pointer.
func (p *Placeholder) Select(data map[string]any, whole any) (any, error) {
	if p.Kind != URI {
		v, ok := data[p.Key]
		if !ok || v == nil {
			return nil, fmt.Errorf("%w: no key %q", ErrKeyMissing, p.Key)
		}
		return v, nil
	}
	if p.Pointer == "" {
		if whole != nil {
			return whole, nil
		}
		return data, nil
	}
	var cur any = data
	tokens := strings.Split(p.Pointer[1:], "/")
	for i, tok := range tokens {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		at := "/" + strings.Join(tokens[:i+1], "/")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok || v == nil {
				return nil, fmt.Errorf("%w: nothing at %q", ErrKeyMissing, at)
			}
			cur = v
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(c) {
				return nil, fmt.Errorf("%w: no list index at %q", ErrKeyMissing, at)
			}
			cur = c[n]
		default:
			return nil, fmt.Errorf("%w: %q is not an object or list", ErrKeyMissing, "/"+strings.Join(tokens[:i], "/"))
		}
	}
	return cur, nil
}

// ModifierError reports a modifier that failed. It names the modifier and the reason, never
// the value it was given.
type ModifierError struct {
	Modifier string
	Reason   string
}

func (e *ModifierError) Error() string { return e.Modifier + ": " + e.Reason }

// Apply runs the placeholder's modifiers over v, left to right.
func (p *Placeholder) Apply(v any) (any, error) {
	for _, m := range p.Modifiers {
		var err error
		if v, err = m.apply(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (m Modifier) apply(v any) (any, error) {
	fail := func(reason string) (any, error) { return nil, &ModifierError{Modifier: m.Name, Reason: reason} }
	switch m.Name {
	case "base64encode":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "base64decode":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return fail("value is not valid standard base64")
		}
		return string(out), nil
	case "jsonParse":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		var out any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil || dec.More() {
			return fail("value is not valid JSON")
		}
		return normalizeJSON(out), nil
	case "yamlParse":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		var out any
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			return fail("value is not valid YAML")
		}
		return out, nil
	case "jsonPath":
		obj := v
		if s, ok := asText(v); ok {
			if err := json.Unmarshal([]byte(s), &obj); err != nil {
				return fail("value is a string that is not JSON")
			}
		}
		var buf bytes.Buffer
		if err := m.JSONPath.Execute(&buf, toJSONTypes(obj)); err != nil {
			// The jsonpath library may print parts of the value in its messages.
			return fail(fmt.Sprintf("template %s does not match the value", m.Expr))
		}
		return buf.String(), nil
	case "indent":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		return indent(s, m.Indent), nil
	case "sha256sum":
		s, ok := asText(v)
		if !ok {
			return fail("value is " + typeName(v) + ", want a string")
		}
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:]), nil
	}
	return fail("unknown modifier")
}

// indent trims each line and indents every line after the first by n spaces, for values
// placed inside a YAML block scalar that is already indented.
func indent(s string, n int) string {
	lines := strings.Split(s, "\n")
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	b.WriteString(strings.TrimSpace(lines[0]))
	for _, l := range lines[1:] {
		b.WriteByte('\n')
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(pad)
			b.WriteString(l)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func asText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case []byte:
		return string(t), true
	}
	return "", false
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case string, []byte:
		return "a string"
	default:
		return "a number"
	}
}

// Stringify renders a value for a place that takes text: strings as they are, numbers and
// booleans in their canonical form, objects and lists as compact JSON with sorted keys.
func Stringify(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return t.String()
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case uint64:
		return strconv.FormatUint(t, 10)
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e15 {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	out, err := json.Marshal(toJSONTypes(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(out)
}

// toJSONTypes converts YAML-decoded values (map[string]any from yaml.v3, []byte) into the
// types encoding/json and the jsonpath library expect.
func toJSONTypes(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = toJSONTypes(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = toJSONTypes(e)
		}
		return out
	case []byte:
		return string(t)
	}
	return v
}

// normalizeJSON turns json.Number into int64 or float64 so typed placeholders keep integers.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeJSON(e)
		}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
	}
	return v
}
