package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/keyway-dev/keyway/internal/parallel"
	"go.yaml.in/yaml/v3"
)

// Limits bound untrusted input. Zero fields take the defaults.
type Limits struct {
	MaxStreamBytes   int64 // a whole input file or stdin; default 256 MiB
	MaxDocumentBytes int   // one document; default 16 MiB
	MaxDepth         int   // nesting of mappings and sequences; default 256
	MaxNodes         int   // nodes of one document with aliases expanded; default 1,000,000
	// MaxDocuments bounds the documents of one stream, empty ones included (each costs a
	// parse however small); default 10,000.
	MaxDocuments int
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
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
	if l.MaxDocuments == 0 {
		l.MaxDocuments = 10_000
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

	doc   *yaml.Node
	raw   []byte // the document's exact text while it is unmodified
	lines []int  // offsets of raw's lines, computed on the first splice
	edits []edit // in-place scalar replacements to apply to raw

	modified bool // a value was substituted or a field removed

	secretMu sync.Mutex
	secrets  [][]string // fields whose value came from a secret reference
}

// MarkSecret records that the field at path (mapping keys, and sequence indexes in
// decimal) holds a value that came from a secret, whatever modifier made it: output that
// shows documents (diffs) masks such fields whole.
func (d *Document) MarkSecret(path []string) {
	d.secretMu.Lock()
	defer d.secretMu.Unlock()
	d.secrets = append(d.secrets, path)
}

// SecretPaths are the fields MarkSecret recorded.
func (d *Document) SecretPaths() [][]string {
	d.secretMu.Lock()
	defer d.secretMu.Unlock()
	return slices.Clone(d.secrets)
}

// Modified reports whether anything in the document was substituted or removed.
func (d *Document) Modified() bool { return d.modified }

// Replace swaps the document's content for root (a sealed form of it, say).
func (d *Document) Replace(root *yaml.Node) {
	d.Root = root
	d.doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
	d.MarkModified()
}

// MarkModified records that the node tree changed, so the document is re-encoded instead of
// written back verbatim.
func (d *Document) MarkModified() {
	d.raw, d.edits, d.modified = nil, nil, true
}

// FromNode wraps a node that is already parsed (an item of a KRM ResourceList) as a
// Document. It is always re-encoded, never written back verbatim.
func FromNode(root *yaml.Node, source string, index int, limits Limits) (*Document, error) {
	if err := checkShape(root, limits.WithDefaults()); err != nil {
		return nil, &Error{Source: source, Index: index, Line: root.Line, Msg: err.Error()}
	}
	return &Document{Source: source, Index: index, Root: root, doc: &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}}, nil
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
//
// The stream is split at document markers ("---" or "..." at the start of a line, which
// YAML forbids inside any content) and each document is parsed on its own, so its exact text
// can be written back unchanged when nothing in it was substituted.
func Read(r io.Reader, source string, limits Limits) ([]*Document, error) {
	return ReadFunc(r, source, limits, nil)
}

// ReadFunc is Read that also calls each for every document as soon as it is parsed, from the
// parsing goroutines (so in no particular order and concurrently), letting a caller start
// work on a document while the rest of the stream is still being parsed.
func ReadFunc(r io.Reader, source string, limits Limits, each func(*Document)) ([]*Document, error) {
	limits = limits.WithDefaults()
	data, err := io.ReadAll(io.LimitReader(r, limits.MaxStreamBytes+1))
	if err != nil {
		return nil, &Error{Source: source, Index: -1, Msg: err.Error()}
	}
	if int64(len(data)) > limits.MaxStreamBytes {
		return nil, &Error{Source: source, Index: -1, Msg: fmt.Sprintf("input is larger than %d bytes", limits.MaxStreamBytes)}
	}
	chunks := split(data, limits.MaxDocuments)
	if len(chunks) > limits.MaxDocuments {
		return nil, &Error{Source: source, Index: limits.MaxDocuments, Line: chunks[limits.MaxDocuments].line, Msg: fmt.Sprintf("more than %d documents (empty ones count)", limits.MaxDocuments)}
	}
	for i, c := range chunks {
		if len(c.text) > limits.MaxDocumentBytes {
			return nil, &Error{Source: source, Index: i, Line: c.line, Msg: fmt.Sprintf("document is larger than %d bytes", limits.MaxDocumentBytes)}
		}
	}
	// Documents parse independently, so large streams use every core.
	parsed := make([]*Document, len(chunks))
	errs := make([]error, len(chunks))
	parallel.For(len(chunks), func(i int) {
		parsed[i], errs[i] = parseChunk(chunks[i], i, source, limits)
		if each != nil && parsed[i] != nil {
			each(parsed[i])
			// Let goroutines woken by each's work (network replies, timers) run now
			// rather than at the next preemption, 10 ms away.
			runtime.Gosched()
		}
	})
	docs := make([]*Document, 0, len(chunks))
	for i := range chunks {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if parsed[i] != nil {
			docs = append(docs, parsed[i])
		}
	}
	return docs, nil
}

// ParseDocument parses the text of one document (a leading "---" allowed) as document
// index of source; it returns nil for an empty document.
func ParseDocument(text []byte, source string, index int, limits Limits) (*Document, error) {
	limits = limits.WithDefaults()
	if len(text) > limits.MaxDocumentBytes {
		return nil, &Error{Source: source, Index: index, Msg: fmt.Sprintf("document is larger than %d bytes", limits.MaxDocumentBytes)}
	}
	var doc *Document
	for _, c := range split(text, limits.MaxDocuments) {
		d, err := parseChunk(c, index, source, limits)
		if err != nil {
			return nil, err
		}
		if d != nil && doc != nil {
			return nil, &Error{Source: source, Index: index, Msg: "more than one document"}
		}
		if d != nil {
			doc = d
		}
	}
	return doc, nil
}

func parseChunk(c chunk, i int, source string, limits Limits) (*Document, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(c.text, &n); err != nil {
		line, msg := relocate(err, c.line)
		return nil, &Error{Source: source, Index: i, Line: line, Msg: msg}
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return nil, nil
	}
	root := n.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if err := checkShape(root, limits); err != nil {
		return nil, &Error{Source: source, Index: i, Line: c.line, Msg: err.Error()}
	}
	d := &Document{Source: source, Index: i, Root: root, doc: &n}
	if c.verbatim {
		d.raw = c.text
	}
	return d, nil
}

type chunk struct {
	text     []byte
	line     int  // 1-based line of the chunk's first byte in the stream
	verbatim bool // the text can stand as a document on its own when written back
}

// split cuts a stream at lines that start with "---" or "..." followed by white space or
// the end of the line. A bare "---" line is dropped; one carrying content ("--- |") stays
// with its document, which is then always re-encoded.
func split(data []byte, max int) []chunk {
	var chunks []chunk
	cur := chunk{line: 1, verbatim: true}
	begin := 0
	line := 1
	flush := func(end int) {
		cur.text = data[begin:end]
		chunks = append(chunks, cur)
	}
	for off := 0; off < len(data); line++ {
		nl := bytes.IndexByte(data[off:], '\n')
		end := len(data)
		next := len(data)
		if nl >= 0 {
			end = off + nl
			next = end + 1
		}
		l := bytes.TrimRight(data[off:end], "\r")
		if marker(l, "---") || marker(l, "...") {
			if off > begin || len(chunks) > 0 || marker(l, "...") {
				flush(off)
				if len(chunks) > max {
					return chunks // the caller refuses the stream: more than max documents
				}
			}
			rest := bytes.TrimSpace(l[3:])
			if marker(l, "---") && len(rest) > 0 && rest[0] != '#' {
				begin = off // keep "--- |" with its document
				cur = chunk{line: line, verbatim: false}
			} else {
				begin = next
				cur = chunk{line: line + 1, verbatim: true}
			}
		}
		off = next
	}
	if begin < len(data) || len(chunks) == 0 {
		flush(len(data))
	}
	// Directives (%YAML …) belong to the document after them.
	out := chunks[:0]
	var carry []byte
	for _, c := range chunks {
		if onlyDirectives(c.text) && bytes.Contains(c.text, []byte("%")) {
			carry = append(carry, c.text...)
			continue
		}
		if carry != nil {
			c.text = append(append(append([]byte(nil), carry...), "---\n"...), c.text...)
			c.verbatim = false
			carry = nil
		}
		out = append(out, c)
	}
	return out
}

func marker(l []byte, m string) bool {
	return bytes.HasPrefix(l, []byte(m)) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t')
}

func onlyDirectives(text []byte) bool {
	for l := range bytes.SplitSeq(text, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '%' && l[0] != '#' {
			return false
		}
	}
	return true
}

// relocate shifts a yaml.v3 error's "line N" by the chunk's first line and drops the
// "yaml: " prefix.
func relocate(err error, first int) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var n int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &n); scanErr == nil {
		line := n + first - 1
		if i := strings.Index(msg, ":"); i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		}
		return line, msg
	}
	return 0, msg
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
		if n.Anchor != "" {
			if s, ok := sizes[n]; ok {
				return s, nil
			}
		}
		total := 1
		switch n.Kind {
		case yaml.AliasNode:
			if n.Alias == nil {
				return 0, errors.New("alias to an unknown anchor")
			}
			if _, busy := sizes[n]; busy {
				return 0, errors.New("alias cycle")
			}
			sizes[n] = 0
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
		if n.Anchor != "" {
			sizes[n] = total
		}
		return total, nil
	}
	_, err := size(root, 0)
	return err
}
