package render

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

type result struct {
	secret providers.Secret
	err    error
}

// substitute writes a site's values into its node, or returns its problems.
func substitute(s *site, results map[providers.Ref]*result) []Problem {
	var problems []Problem
	values := make([]any, 0, len(s.refs))
	missingOnly := true
	i := 0
	for _, part := range s.tmpl.Parts {
		p := part.Placeholder
		if p == nil {
			continue
		}
		res := results[s.refs[i]]
		i++
		v, err := resolve(p, res)
		if err != nil {
			if !errors.Is(err, reference.ErrKeyMissing) {
				missingOnly = false
			}
			problems = append(problems, Problem{Source: s.doc.Source, Document: s.doc.Index, Field: s.field(), Reference: p.Raw, Reason: reason(err)})
			continue
		}
		values = append(values, v)
	}
	if len(problems) > 0 {
		if s.removable && missingOnly {
			removeFrom(s.parent, s.node)
			s.doc.MarkModified()
			return nil
		}
		return problems
	}
	if _, ok := s.tmpl.Single(); ok && s.mode == modeTyped {
		if !textual(values[0]) {
			return []Problem{s.binary()}
		}
		setTyped(s.doc, s.node, values[0])
		s.doc.MarkSecret(s.pathKeys())
		return nil
	}
	var b strings.Builder
	i = 0
	for _, part := range s.tmpl.Parts {
		if part.Placeholder == nil {
			b.WriteString(part.Literal)
			continue
		}
		b.WriteString(reference.Stringify(values[i]))
		i++
	}
	text := b.String()
	if s.mode == modeBase64 {
		text = base64.StdEncoding.EncodeToString([]byte(text))
	} else if !utf8.ValidString(text) {
		return []Problem{s.binary()}
	}
	setString(s.doc, s.node, text)
	s.doc.MarkSecret(s.pathKeys())
	return nil
}

// textual reports whether a value can be written as a YAML or JSON string: binary values
// would be replaced by U+FFFD on output.
func textual(v any) bool {
	switch t := v.(type) {
	case string:
		return utf8.ValidString(t)
	case []byte:
		return utf8.Valid(t)
	}
	return true
}

// binary is the problem of a site whose value is not UTF-8 text.
func (s *site) binary() Problem {
	why := "the value is binary (not UTF-8) and YAML or JSON text cannot hold it: encode it with | base64encode"
	switch s.kind {
	case "Secret":
		why += " and put it under data"
	case "ConfigMap":
		why += " and put it under binaryData"
	}
	var raws []string
	for _, part := range s.tmpl.Parts {
		if part.Placeholder != nil {
			raws = append(raws, part.Placeholder.Raw)
		}
	}
	return Problem{Source: s.doc.Source, Document: s.doc.Index, Field: s.field(), Reference: strings.Join(raws, " "), Reason: why}
}

func resolve(p *reference.Placeholder, res *result) (any, error) {
	if res.err != nil {
		return nil, res.err
	}
	v, err := p.Select(res.secret.Data, res.secret.Whole)
	if err != nil {
		return nil, err
	}
	return p.Apply(v)
}

// reason classifies an error for the problem list. Provider errors are required to be free
// of secret values, and modifier errors never include the value.
func reason(err error) string {
	var me *reference.ModifierError
	switch {
	case errors.As(err, &me):
		return "modifier " + me.Error()
	case errors.Is(err, reference.ErrKeyMissing):
		return err.Error()
	case errors.Is(err, providers.ErrNotFound),
		errors.Is(err, providers.ErrPermissionDenied),
		errors.Is(err, providers.ErrUnavailable),
		errors.Is(err, providers.ErrNotConfigured):
		return err.Error()
	}
	return "error: " + err.Error()
}

// setTyped replaces a scalar's content with v's YAML form, in place so aliases follow.
func setTyped(d *manifest.Document, n *yaml.Node, v any) {
	switch t := v.(type) {
	case string:
		setString(d, n, t)
		return
	case []byte:
		setString(d, n, string(t))
		return
	case bool, int, int64, uint64, float64:
		if !d.SpliceScalar(n, reference.Stringify(t)) {
			d.MarkModified()
		}
	default:
		d.MarkModified()
	}
	var repl yaml.Node
	if err := repl.Encode(v); err != nil {
		d.MarkModified()
		setString(d, n, reference.Stringify(v))
		return
	}
	anchor, line, col := n.Anchor, n.Line, n.Column
	*n = repl
	n.Anchor, n.Line, n.Column = anchor, line, col
}

// setString stores text as a string scalar. In an unmodified document the scalar's source
// text is replaced in place; otherwise the node is updated for re-encoding, where plain style
// is dropped if the text would read back as another type ("true", "123") or spans lines.
func setString(d *manifest.Document, n *yaml.Node, text string) {
	scalar := manifest.ScalarText(text)
	if strings.ContainsAny(text, "\n\r") || !d.SpliceScalar(n, scalar) {
		d.MarkModified()
	}
	n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "!!str", text, nil
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		if !strings.Contains(text, "\n") {
			n.Style = 0
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
	default:
		// yaml.v3 writes a plain scalar for text that YAML 1.2 reads as a string, but
		// sigs.k8s.io/yaml (Argo CD, kubectl) reads YAML 1.1, where yes, on, y, 12:30 are
		// not strings: quote all that is not unambiguously a string in both.
		n.Style = 0
		switch {
		case strings.Contains(text, "\n"):
			n.Style = yaml.LiteralStyle
		case scalar != text:
			n.Style = yaml.DoubleQuotedStyle
		}
	}
}

func removeFrom(parent, n *yaml.Node) {
	if parent == nil {
		return
	}
	switch parent.Kind {
	case yaml.MappingNode:
		for i := 1; i < len(parent.Content); i += 2 {
			if parent.Content[i] == n {
				parent.Content = append(parent.Content[:i-1], parent.Content[i+1:]...)
				return
			}
		}
	case yaml.SequenceNode:
		for i, c := range parent.Content {
			if c == n {
				parent.Content = append(parent.Content[:i], parent.Content[i+1:]...)
				return
			}
		}
	}
}
