package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits bound untrusted input. Zero fields take the defaults.
type Limits struct {
	MaxStreamBytes   int64 // a whole input file or stdin; default 256 MiB
	MaxDocumentBytes int   // one document; default 16 MiB
	MaxDepth         int   // nesting of mappings and sequences; default 256
	MaxNodes         int   // nodes of one document with aliases expanded; default 1,000,000
}

func (l Limits) withDefaults() Limits {
	if l.MaxStreamBytes == 0 {
		l.MaxStreamBytes = 256 << 20
	}
	if l.MaxDocumentBytes == 0 {
		l.MaxDocumentBytes = 16 << 20
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = 256
	}
	if l.MaxNodes == 0 {
		l.MaxNodes = 1_000_000
	}
	return l
}

// Document is one document of a stream.
type Document struct {
	Source string     // file path, or "<stdin>"
	Index  int        // 0-based position in its source, counting empty documents
	Root   *yaml.Node // the mapping (or other) node under the document node
	// Dir is the directory relative references (ref+file://) in this document resolve
	// against, and Confine the directory they may not leave. Set by the reader's caller.
	Dir, Confine string

	doc *yaml.Node
}

// Node returns the document node, for encoding.
func (d *Document) Node() *yaml.Node { return d.doc }

// Error locates a problem in the input: file, document and, where known, line.
type Error struct {
	Source string
	Index  int // -1 when the problem is not in one document
	Line   int // 0 when unknown
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, ": document %d", e.Index)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Read parses every document of r. Empty documents (a lone "---", comments only) are
// skipped but counted, so Index matches what an editor shows.
func Read(r io.Reader, source string, limits Limits) ([]*Document, error) {
	limits = limits.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, limits.MaxStreamBytes+1))
	if err != nil {
		return nil, &Error{Source: source, Index: -1, Msg: err.Error()}
	}
	if int64(len(data)) > limits.MaxStreamBytes {
		return nil, &Error{Source: source, Index: -1, Msg: fmt.Sprintf("input is larger than %d bytes", limits.MaxStreamBytes)}
	}
	if err := checkDocumentSizes(data, source, limits.MaxDocumentBytes); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*Document
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, &Error{Source: source, Index: i, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if err := checkShape(root, limits); err != nil {
			return nil, &Error{Source: source, Index: i, Line: root.Line, Msg: err.Error()}
		}
		docs = append(docs, &Document{Source: source, Index: i, Root: root, doc: &n})
	}
}

// checkDocumentSizes splits on document markers at the start of a line and refuses any
// document above max. It over-approximates document boundaries, which is safe for a cap.
func checkDocumentSizes(data []byte, source string, max int) error {
	start, index := 0, 0
	for off := 0; off <= len(data); {
		nl := bytes.IndexByte(data[off:], '\n')
		end := len(data)
		if nl >= 0 {
			end = off + nl
		}
		line := data[off:end]
		if bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r') {
			if off-start > max {
				return &Error{Source: source, Index: index, Msg: fmt.Sprintf("document is larger than %d bytes", max)}
			}
			if off > 0 {
				index++
			}
			start = off
		}
		if nl < 0 {
			break
		}
		off = end + 1
	}
	if len(data)-start > max {
		return &Error{Source: source, Index: index, Msg: fmt.Sprintf("document is larger than %d bytes", max)}
	}
	return nil
}

// checkShape enforces depth and the expanded node count. Aliases are counted as the size of
// what they point to (memoised), so a "billion laughs" document is refused in linear time.
func checkShape(root *yaml.Node, limits Limits) error {
	sizes := map[*yaml.Node]int{}
	var size func(n *yaml.Node, depth int) (int, error)
	size = func(n *yaml.Node, depth int) (int, error) {
		if depth > limits.MaxDepth {
			return 0, fmt.Errorf("nesting is deeper than %d levels", limits.MaxDepth)
		}
		if s, ok := sizes[n]; ok {
			return s, nil
		}
		total := 1
		switch n.Kind {
		case yaml.AliasNode:
			if n.Alias == nil {
				return 0, errors.New("alias to an unknown anchor")
			}
			sizes[n] = 0 // an alias cycle counts as empty here; the encoder refuses it later
			s, err := size(n.Alias, depth)
			if err != nil {
				return 0, err
			}
			total = s
		default:
			for _, c := range n.Content {
				s, err := size(c, depth+1)
				if err != nil {
					return 0, err
				}
				total += s
				if total > limits.MaxNodes {
					return 0, fmt.Errorf("document expands to more than %d nodes (alias expansion)", limits.MaxNodes)
				}
			}
		}
		sizes[n] = total
		return total, nil
	}
	_, err := size(root, 0)
	return err
}
