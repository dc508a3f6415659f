package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Format is an output encoding.
type Format string

const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// ParseFormat accepts "yaml" or "json".
func ParseFormat(s string) (Format, error) {
	switch Format(strings.ToLower(s)) {
	case YAML:
		return YAML, nil
	case JSON:
		return JSON, nil
	}
	return "", fmt.Errorf("output format %q: want yaml or json", s)
}

// Encode writes docs to a buffer first, so a failure part-way never leaves partial output
// in w. YAML is a "---"-separated stream; JSON is one object for one document and a v1 List
// otherwise, as kubectl prints them.
func Encode(w io.Writer, docs []*Document, f Format) error {
	var buf bytes.Buffer
	switch f {
	case YAML:
		for i, d := range docs {
			if i > 0 {
				buf.WriteString("---\n")
			}
			if err := writeYAML(&buf, d); err != nil {
				return err
			}
		}
	case JSON:
		var out any
		items := make([]any, 0, len(docs))
		for _, d := range docs {
			v, err := ToJSON(d.Root)
			if err != nil {
				return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
			}
			items = append(items, v)
		}
		if len(items) == 1 {
			out = items[0]
		} else {
			out = orderedMap{{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}}
		}
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown output format %q", f)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// EncodeYAML returns one document's YAML text: its source text with its substitutions
// when it has one, else the encoded node tree.
func EncodeYAML(d *Document) ([]byte, error) {
	var buf bytes.Buffer
	err := writeYAML(&buf, d)
	return buf.Bytes(), err
}

func writeYAML(buf *bytes.Buffer, d *Document) error {
	if text := d.text(); text != nil {
		buf.Write(text)
		if len(text) > 0 && text[len(text)-1] != '\n' {
			buf.WriteByte('\n')
		}
		return nil
	}
	enc := yaml.NewEncoder(buf)
	enc.SetIndent(2)
	if err := enc.Encode(d.doc); err != nil {
		return fmt.Errorf("%s: document %d: encode: %w", d.Source, d.Index, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("%s: document %d: encode: %w", d.Source, d.Index, err)
	}
	return nil
}

type kv struct {
	k string
	v any
}

// orderedMap keeps YAML key order in JSON output.
type orderedMap []kv

func (m orderedMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalNoHTMLEscape(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalNoHTMLEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// ToJSON converts a node tree to JSON-encodable values, keeping key order, expanding
// aliases and YAML merge keys, and keeping integers too large for int64 exact.
func ToJSON(n *yaml.Node) (any, error) {
	return toJSON(n, 0)
}

func toJSON(n *yaml.Node, depth int) (any, error) {
	if depth > 10_000 {
		return nil, errors.New("alias cycle")
	}
	switch n.Kind {
	case yaml.AliasNode:
		return toJSON(n.Alias, depth+1)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return toJSON(n.Content[0], depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toJSON(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := orderedMap{}
		seen := map[string]int{}
		set := func(k string, v any) {
			if i, ok := seen[k]; ok {
				out[i].v = v
				return
			}
			seen[k] = len(out)
			out = append(out, kv{k, v})
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				if err := mergeInto(v, depth, seen, set); err != nil {
					return nil, err
				}
				continue
			}
			jv, err := toJSON(v, depth+1)
			if err != nil {
				return nil, err
			}
			set(k.Value, jv)
		}
		return out, nil
	case yaml.ScalarNode:
		return scalarJSON(n)
	}
	return nil, fmt.Errorf("unexpected YAML node kind %d", n.Kind)
}

// mergeInto applies "<<: *anchor" (or a list of anchors) without overriding explicit keys
// written before it; explicit keys after it override, as YAML specifies.
func mergeInto(v *yaml.Node, depth int, seen map[string]int, set func(string, any)) error {
	var sources []*yaml.Node
	if r := resolve(v); r != nil && r.Kind == yaml.SequenceNode {
		sources = r.Content
	} else {
		sources = []*yaml.Node{v}
	}
	for _, s := range sources {
		m, err := toJSON(s, depth+1)
		if err != nil {
			return err
		}
		om, ok := m.(orderedMap)
		if !ok {
			return errors.New("merge key '<<' must refer to a mapping")
		}
		for _, e := range om {
			if _, exists := seen[e.k]; !exists {
				set(e.k, e.v)
			}
		}
	}
	return nil
}

func scalarJSON(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		s := strings.ReplaceAll(n.Value, "_", "")
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			return i, nil
		}
		if bi, ok := new(big.Int).SetString(s, 0); ok {
			return json.Number(bi.String()), nil
		}
		return n.Value, nil
	case "!!float":
		if isDecimalInteger(n.Value) {
			// An integer too large for int64 resolves as a float in YAML; keep its digits.
			return json.Number(strings.TrimPrefix(n.Value, "+")), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return n.Value, nil
		}
		return f, nil
	case "!!binary":
		return n.Value, nil
	}
	return n.Value, nil
}

func isDecimalInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
