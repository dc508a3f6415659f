package manifest

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Get returns the value node at a path of mapping keys, or nil.
func Get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = resolve(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return resolve(n)
}

// String returns the scalar string at a path of mapping keys, or "".
func String(n *yaml.Node, keys ...string) string {
	v := Get(n, keys...)
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	return v.Value
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsString reports whether a scalar node holds a string (explicitly tagged or resolved).
func IsString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
}

// Decode converts a document into a typed object (a corev1.Secret, a SealedSecret) through
// its JSON form. Errors name the document, types and offsets, never values.
func Decode(d *Document, into any) error {
	v, err := ToJSON(d.Root)
	if err != nil {
		return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: document %d: not a valid object: %v", d.Source, d.Index, err)
	}
	return nil
}

// FromObject turns a typed object into a block-style YAML node, as if it had been written
// by hand: JSON is YAML, but the flow style and quoting of its form are dropped, except
// for strings that another YAML reader could take for something else ("on", "12:30").
func FromObject(obj any) (*yaml.Node, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	root := n.Content[0]
	clearStyle(root)
	return root, nil
}

func clearStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style = 0
		if ScalarText(n.Value) != n.Value {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// Set sets key in mapping m to v, replacing an existing value or appending the pair.
func Set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// Delete removes key (every occurrence) from mapping m.
func Delete(m *yaml.Node, key string) {
	out := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			out = append(out, m.Content[i], m.Content[i+1])
		}
	}
	m.Content = out
}

// DeepCopy copies a node tree. Aliases keep pointing at the original anchors.
func DeepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = DeepCopy(ch)
	}
	return &c
}
