package render

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

// argocd-vault-plugin annotations honoured on any document.
const (
	AnnotationPath          = "avp.kubernetes.io/path"
	AnnotationSecretVersion = "avp.kubernetes.io/secret-version"
	AnnotationKVVersion     = "avp.kubernetes.io/kv-version"
	AnnotationIgnore        = "avp.kubernetes.io/ignore"
	AnnotationRemoveMissing = "avp.kubernetes.io/remove-missing"
)

// Fetcher resolves one secret; *providers.Clients is the production implementation.
type Fetcher interface {
	Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error)
}

// Options configure an Engine. Zero fields take defaults.
type Options struct {
	// DefaultBackend resolves <path:…> and <KEY> placeholders; URI references name their own.
	DefaultBackend string
	// Concurrency bounds fetches in flight; default 16.
	Concurrency int
	// MaxReferences bounds the placeholders in one render; default 100,000.
	MaxReferences int
}

// Engine renders documents. It is safe for concurrent use.
type Engine struct {
	fetch Fetcher
	opts  Options
}

// New returns an Engine fetching through f.
func New(f Fetcher, opts Options) *Engine {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.MaxReferences <= 0 {
		opts.MaxReferences = 100_000
	}
	return &Engine{fetch: f, opts: opts}
}

// Stats describe one render.
type Stats struct {
	Documents  int // documents rendered (ignored ones included)
	References int // placeholders substituted
	Fetches    int // distinct secrets fetched
}

// Problem is one unresolved reference or malformed placeholder.
type Problem struct {
	Source    string
	Document  int
	Field     string
	Reference string // the placeholder as written; manifest text, never a value
	Reason    string
}

func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: document %d", p.Source, p.Document)
	if p.Field != "" {
		fmt.Fprintf(&b, ": %s", p.Field)
	}
	if p.Reference != "" {
		fmt.Fprintf(&b, ": %s", p.Reference)
	}
	fmt.Fprintf(&b, ": %s", p.Reason)
	return b.String()
}

// Error lists every problem of a failed render.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%d unresolved reference(s):", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

type mode int

const (
	modeTyped  mode = iota // a lone placeholder takes the value's type
	modeString             // ConfigMap data, Secret data/stringData: always text
	modeBase64             // Secret data whose base64 text held placeholders
)

// site is one string field holding placeholders.
type site struct {
	doc       *manifest.Document
	path      []string
	parent    *yaml.Node // mapping or sequence holding node
	node      *yaml.Node
	tmpl      reference.Template
	refs      []providers.Ref // one per placeholder part, in order; zero Ref where unresolvable
	mode      mode
	removable bool
}

func (s *site) field() string { return strings.Join(s.path, "") }

// docContext is what a document's annotations say about its references.
type docContext struct {
	kind          string
	genericPath   string
	version       string
	params        string
	removeMissing bool
}

// Render substitutes every reference in docs in place. On any problem it returns *Error and
// the documents must be discarded.
func (e *Engine) Render(ctx context.Context, docs []*manifest.Document) (Stats, error) {
	stats := Stats{Documents: len(docs)}
	var problems []Problem
	var sites []*site
	count := 0
	for _, d := range docs {
		dc, skip, err := readAnnotations(d)
		if err != nil {
			problems = append(problems, Problem{Source: d.Source, Document: d.Index, Reason: err.Error()})
			continue
		}
		if skip {
			continue
		}
		w := walker{engine: e, doc: d, dc: dc}
		w.walk(d.Root, nil, nil)
		problems = append(problems, w.problems...)
		for _, s := range w.sites {
			count += len(s.refs)
		}
		if count > e.opts.MaxReferences {
			return stats, &Error{Problems: []Problem{{Source: d.Source, Document: d.Index, Reason: fmt.Sprintf("more than %d references in one render", e.opts.MaxReferences)}}}
		}
		sites = append(sites, w.sites...)
	}

	results := e.fetchAll(ctx, sites)
	stats.Fetches = len(results)

	for _, s := range sites {
		ps := e.substitute(s, results)
		if len(ps) == 0 {
			stats.References += len(s.refs)
		}
		problems = append(problems, ps...)
	}
	if len(problems) > 0 {
		return stats, &Error{Problems: problems}
	}
	return stats, nil
}

func readAnnotations(d *manifest.Document) (docContext, bool, error) {
	dc := docContext{kind: manifest.String(d.Root, "kind")}
	ann := manifest.Get(d.Root, "metadata", "annotations")
	get := func(k string) string { return manifest.String(ann, k) }
	if b, _ := strconv.ParseBool(get(AnnotationIgnore)); b {
		return dc, true, nil
	}
	dc.genericPath = get(AnnotationPath)
	dc.version = get(AnnotationSecretVersion)
	if kv := get(AnnotationKVVersion); kv != "" {
		if kv != "1" && kv != "2" {
			return dc, false, fmt.Errorf("annotation %s: %q is not 1 or 2", AnnotationKVVersion, kv)
		}
		dc.params = url.Values{"kv-version": {kv}}.Encode()
	}
	if rm := get(AnnotationRemoveMissing); rm != "" {
		b, err := strconv.ParseBool(rm)
		if err != nil {
			return dc, false, fmt.Errorf("annotation %s: %q is not true or false", AnnotationRemoveMissing, rm)
		}
		if b && dc.kind != "Secret" && dc.kind != "ConfigMap" {
			return dc, false, fmt.Errorf("annotation %s applies only to Secret and ConfigMap, not %s", AnnotationRemoveMissing, dc.kind)
		}
		dc.removeMissing = b
	}
	return dc, false, nil
}

type walker struct {
	engine   *Engine
	doc      *manifest.Document
	dc       docContext
	sites    []*site
	problems []Problem
}

func (w *walker) walk(n, parent *yaml.Node, path []string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			seg := "." + key
			if len(path) == 0 {
				seg = key
			}
			if strings.ContainsAny(key, ".[]") {
				seg = "[" + strconv.Quote(key) + "]"
			}
			w.walk(n.Content[i+1], n, append(path, seg))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			w.walk(c, n, append(path, "["+strconv.Itoa(i)+"]"))
		}
	case yaml.ScalarNode:
		if manifest.IsString(n) {
			w.scalar(n, parent, path)
		}
	}
	// Aliases are not followed: the anchored node is visited where it is defined, and
	// substituting it in place updates every alias.
}

func (w *walker) scalar(n, parent *yaml.Node, path []string) {
	m := modeTyped
	dataField := len(path) == 2 && (path[0] == "data" || path[0] == "stringData" || path[0] == "binaryData")
	switch {
	case w.dc.kind == "ConfigMap" && dataField:
		m = modeString
	case w.dc.kind == "Secret" && dataField:
		m = modeString
	}
	value := n.Value
	if reference.Contains(value) {
		w.add(n, parent, path, value, m)
		return
	}
	if w.dc.kind == "Secret" && dataField && path[0] == "data" {
		// A base64 value whose decoded text holds placeholders: decode, substitute, re-encode.
		if dec, err := base64.StdEncoding.DecodeString(value); err == nil && reference.Contains(string(dec)) {
			w.add(n, parent, path, string(dec), modeBase64)
		}
	}
}

func (w *walker) add(n, parent *yaml.Node, path []string, text string, m mode) {
	tmpl, err := reference.Parse(text, reference.Options{Generic: w.dc.genericPath != ""})
	if err != nil {
		w.problems = append(w.problems, Problem{Source: w.doc.Source, Document: w.doc.Index, Field: strings.Join(path, ""), Reason: err.Error()})
		return
	}
	if !tmpl.HasPlaceholders() {
		return
	}
	s := &site{doc: w.doc, path: append([]string(nil), path...), parent: parent, node: n, tmpl: tmpl, mode: m, removable: w.dc.removeMissing}
	for _, part := range tmpl.Parts {
		if part.Placeholder == nil {
			continue
		}
		ref, err := w.ref(part.Placeholder)
		if err != nil {
			w.problems = append(w.problems, Problem{Source: w.doc.Source, Document: w.doc.Index, Field: s.field(), Reference: part.Placeholder.Raw, Reason: err.Error()})
			return
		}
		s.refs = append(s.refs, ref)
	}
	w.sites = append(w.sites, s)
}

// ref turns a placeholder into the secret it needs.
func (w *walker) ref(p *reference.Placeholder) (providers.Ref, error) {
	switch p.Kind {
	case reference.Path, reference.Generic:
		backend := w.engine.opts.DefaultBackend
		if backend == "" {
			return providers.Ref{}, fmt.Errorf("%w: no default backend for <path:…> placeholders; set --backend (or KEYWAY_BACKEND, AVP_TYPE)", providers.ErrNotConfigured)
		}
		path := p.Path
		if p.Kind == reference.Generic {
			path = w.dc.genericPath
		}
		version := p.Version
		if version == "" {
			version = w.dc.version
		}
		return providers.Ref{Backend: backend, Path: path, Version: version, Params: w.dc.params}, nil
	default:
		ref := providers.Ref{Backend: p.Backend, Path: p.Path, Version: p.Version, Params: p.Params}
		if p.Backend == "file" {
			path, err := confine(w.doc, p.Path)
			if err != nil {
				return providers.Ref{}, err
			}
			ref.Path = path
		}
		return ref, nil
	}
}

// confine resolves a ref+file:// path against the manifest's directory and refuses one that
// leaves the render root, following symbolic links.
func confine(d *manifest.Document, p string) (string, error) {
	dir, root, orig := d.Dir, d.Confine, p
	if dir == "" {
		dir = "."
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if root == "" {
		root = dir
	}
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if !within(abs, rootAbs) {
		return "", fmt.Errorf("file %q is outside the render root", orig)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: file %q does not exist", providers.ErrNotFound, orig)
		}
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(rootAbs)
	if err != nil {
		return "", err
	}
	if !within(real, realRoot) {
		return "", fmt.Errorf("file %q links outside the render root", orig)
	}
	return real, nil
}

func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

type result struct {
	secret providers.Secret
	err    error
}

// fetchAll fetches every distinct secret once, at most Concurrency at a time.
func (e *Engine) fetchAll(ctx context.Context, sites []*site) map[providers.Ref]*result {
	results := map[providers.Ref]*result{}
	var order []providers.Ref
	for _, s := range sites {
		for _, r := range s.refs {
			if _, ok := results[r]; !ok {
				results[r] = &result{}
				order = append(order, r)
			}
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].String() < order[j].String() })
	work := make(chan providers.Ref)
	var wg sync.WaitGroup
	for range min(e.opts.Concurrency, len(order)) {
		wg.Go(func() {
			for r := range work {
				res := results[r]
				if err := ctx.Err(); err != nil {
					res.err = fmt.Errorf("%w: %v", providers.ErrUnavailable, err)
					continue
				}
				res.secret, res.err = e.fetch.Fetch(ctx, r)
			}
		})
	}
	for _, r := range order {
		work <- r
	}
	close(work)
	wg.Wait()
	return results
}

// substitute writes a site's values into its node, or returns its problems.
func (e *Engine) substitute(s *site, results map[providers.Ref]*result) []Problem {
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
	s.doc.MarkModified()

	if _, ok := s.tmpl.Single(); ok && s.mode == modeTyped {
		setTyped(s.node, values[0])
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
	}
	setString(s.node, text)
	return nil
}

func resolve(p *reference.Placeholder, res *result) (any, error) {
	if res.err != nil {
		return nil, res.err
	}
	v, err := p.Select(res.secret.Data)
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
func setTyped(n *yaml.Node, v any) {
	if s, ok := v.(string); ok {
		setString(n, s)
		return
	}
	if b, ok := v.([]byte); ok {
		setString(n, string(b))
		return
	}
	var repl yaml.Node
	if err := repl.Encode(v); err != nil {
		setString(n, reference.Stringify(v))
		return
	}
	anchor, line, col := n.Anchor, n.Line, n.Column
	*n = repl
	n.Anchor, n.Line, n.Column = anchor, line, col
}

// setString stores text as a string scalar; plain style is dropped where the text would read
// back as another type ("true", "123") or across lines.
func setString(n *yaml.Node, text string) {
	n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "!!str", text, nil
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		if !strings.Contains(text, "\n") {
			n.Style = 0
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
	default:
		n.Style = 0
		if strings.Contains(text, "\n") {
			n.Style = yaml.LiteralStyle
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
