package manifest

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// edit replaces raw[off:end] with text.
type edit struct {
	off, end int
	text     string
}

// SpliceScalar records that the single-line scalar n now holds the YAML text repl, editing the
// document's source text in place, so the rest of the document keeps its exact formatting.
// It must be called before n is changed. It returns false when the document is no longer
// verbatim or n's source span cannot be located with certainty (anchors, tags, escapes,
// block scalars); the caller then marks the document modified and it is re-encoded.
func (d *Document) SpliceScalar(n *yaml.Node, repl string) bool {
	if d.raw == nil || n.Kind != yaml.ScalarNode || n.Anchor != "" || strings.ContainsAny(n.Value, "\n\r") || n.Line < 1 || n.Column < 1 {
		return false
	}
	if d.lines == nil {
		d.lines = []int{0}
		for i, c := range d.raw {
			if c == '\n' {
				d.lines = append(d.lines, i+1)
			}
		}
	}
	if n.Line > len(d.lines) {
		return false
	}
	start := d.lines[n.Line-1]
	end := len(d.raw)
	if n.Line < len(d.lines) {
		end = d.lines[n.Line] - 1
	}
	line := d.raw[start:end]
	off := runeOffset(line, n.Column-1)
	if off < 0 {
		return false
	}
	var src string
	switch n.Style {
	case 0:
		src = n.Value
	case yaml.SingleQuotedStyle:
		src = "'" + strings.ReplaceAll(n.Value, "'", "''") + "'"
	case yaml.DoubleQuotedStyle:
		if strings.ContainsAny(n.Value, "\\\"") {
			return false
		}
		src = `"` + n.Value + `"`
	default:
		return false
	}
	if !bytes.HasPrefix(line[off:], []byte(src)) {
		return false
	}
	d.edits = append(d.edits, edit{off: start + off, end: start + off + len(src), text: repl})
	d.modified = true
	return true
}

func runeOffset(line []byte, col int) int {
	off := 0
	for range col {
		if off >= len(line) {
			return -1
		}
		_, size := utf8.DecodeRune(line[off:])
		off += size
	}
	return off
}

// text returns the document's source with its edits applied, or nil when it must be
// re-encoded.
func (d *Document) text() []byte {
	if d.raw == nil || len(d.edits) == 0 {
		return d.raw
	}
	sort.Slice(d.edits, func(i, j int) bool { return d.edits[i].off < d.edits[j].off })
	var b bytes.Buffer
	b.Grow(len(d.raw) + 64*len(d.edits))
	prev := 0
	for _, e := range d.edits {
		b.Write(d.raw[prev:e.off])
		b.WriteString(e.text)
		prev = e.end
	}
	b.Write(d.raw[prev:])
	return b.Bytes()
}

// ScalarText returns YAML text for a string value that reads back as exactly that string
// when placed where a flow or block scalar value goes: plain where that is unambiguous,
// double-quoted (JSON escaping, which YAML accepts) otherwise.
func ScalarText(s string) string {
	if plainSafe(s) {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// plainSafe is deliberately narrow: a letter, '_' or '/' first (so never a number, date,
// indicator or special float), then a conservative set of characters with no ": " or " #",
// and none of the words YAML 1.1 or 1.2 read as booleans or null.
func plainSafe(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '/') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_-./@=+~", c) >= 0:
		case c == ':' && i+1 < len(s) && s[i+1] != ' ':
		default:
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~":
		return false
	}
	return true
}
