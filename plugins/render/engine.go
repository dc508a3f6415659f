package render

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"

	"github.com/keyway-dev/keyway/internal/parallel"
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
	// Check, when set, vets every reference before anything is fetched (an Argo CD
	// project's path policy); a refused reference is a problem and is never fetched.
	Check func(providers.Ref) error
	// Logger receives one debug record per fetch (reference, duration, outcome; never a
	// value). Nil discards.
	Logger *slog.Logger
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
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
	path      []seg
	parent    *yaml.Node // mapping or sequence holding node
	node      *yaml.Node
	tmpl      reference.Template
	refs      []providers.Ref // one per placeholder part, in order; zero Ref where unresolvable
	mode      mode
	kind      string // the document's kind
	removable bool
}

func (s *site) field() string { return formatPath(s.path) }

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
	sess := e.Start(ctx)
	for _, d := range docs {
		sess.Add(d)
	}
	return sess.Finish(docs)
}

// Session is one render in progress: documents are added as they are parsed (from any
// goroutine) and each new secret is fetched as soon as the first reference to it is seen,
// so fetch latency overlaps with reading the rest of the input.
type Session struct {
	e   *Engine
	ctx context.Context

	mu       sync.Mutex
	docs     map[*manifest.Document]*docState
	results  map[providers.Ref]*result
	refCount int
	overflow *Problem

	queue   chan []providers.Ref // work items: one ref, or a batch for a BatchFetcher
	pending [][]providers.Ref    // work that found the queue full after ctx ended
	batches map[string][]providers.Ref
	workers sync.WaitGroup
}

type docState struct {
	sites    []*site
	problems []Problem
}

// Start begins a render. Every Session must be finished with Finish.
func (e *Engine) Start(ctx context.Context) *Session {
	s := &Session{
		e: e, ctx: ctx,
		docs:    map[*manifest.Document]*docState{},
		results: map[providers.Ref]*result{},
		queue:   make(chan []providers.Ref, 4096),
		batches: map[string][]providers.Ref{},
	}
	for range e.opts.Concurrency {
		s.workers.Go(s.fetchLoop)
	}
	return s
}

// Add reads a document's annotations, finds its references and queues fetches for secrets
// not seen before. It is safe for concurrent use.
func (s *Session) Add(d *manifest.Document) {
	st := &docState{}
	dc, skip, err := readAnnotations(d)
	switch {
	case err != nil:
		st.problems = append(st.problems, Problem{Source: d.Source, Document: d.Index, Reason: err.Error()})
	case !skip:
		w := walker{engine: s.e, doc: d, dc: dc}
		w.walk(d.Root, nil, nil)
		st.sites, st.problems = w.sites, w.problems
	}
	n := 0
	for _, site := range st.sites {
		n += len(site.refs)
	}
	s.mu.Lock()
	s.docs[d] = st
	s.refCount += n
	if s.refCount > s.e.opts.MaxReferences {
		if s.overflow == nil {
			s.overflow = &Problem{Source: d.Source, Document: d.Index, Reason: fmt.Sprintf("more than %d references in one render", s.e.opts.MaxReferences)}
		}
		s.mu.Unlock()
		return
	}
	var fresh []providers.Ref
	for _, site := range st.sites {
		for _, r := range site.refs {
			if _, ok := s.results[r]; !ok {
				s.results[r] = &result{}
				fresh = append(fresh, r)
			}
		}
	}
	s.mu.Unlock()
	bf, canBatch := s.e.fetch.(BatchFetcher)
	for _, r := range fresh {
		if canBatch {
			if n := bf.Batcher(s.ctx, r); n > 1 {
				s.mu.Lock()
				b := append(s.batches[r.Backend], r)
				if len(b) < n {
					s.batches[r.Backend] = b
					s.mu.Unlock()
					continue
				}
				delete(s.batches, r.Backend)
				s.mu.Unlock()
				s.dispatch(b)
				continue
			}
		}
		s.dispatch([]providers.Ref{r})
	}
}

// BatchFetcher is implemented by fetchers that can read several secrets of one backend in
// one call; *providers.Clients does, for backends whose client is a providers.BatchClient.
type BatchFetcher interface {
	Fetcher
	// Batcher returns how many refs of ref's backend one batch takes, or 0 to fetch ref alone.
	Batcher(ctx context.Context, ref providers.Ref) int
	FetchBatch(ctx context.Context, refs []providers.Ref) []providers.Result
}

func (s *Session) dispatch(work []providers.Ref) {
	select {
	case s.queue <- work:
	case <-s.ctx.Done():
		s.mu.Lock()
		s.pending = append(s.pending, work)
		s.mu.Unlock()
	}
}

func (s *Session) fetchLoop() {
	for work := range s.queue {
		s.fetch(work)
	}
}

func (s *Session) fetch(work []providers.Ref) {
	s.mu.Lock()
	res := make([]*result, len(work))
	for i, r := range work {
		res[i] = s.results[r]
	}
	s.mu.Unlock()
	if err := s.ctx.Err(); err != nil {
		for _, r := range res {
			r.err = fmt.Errorf("%w: %v", providers.ErrUnavailable, err)
		}
		return
	}
	start := time.Now()
	if len(work) == 1 {
		res[0].secret, res[0].err = s.e.fetch.Fetch(s.ctx, work[0])
	} else {
		for i, out := range s.e.fetch.(BatchFetcher).FetchBatch(s.ctx, work) {
			res[i].secret, res[i].err = out.Secret, out.Err
		}
	}
	for i, r := range work {
		if res[i].err != nil {
			s.e.opts.Logger.Debug("fetch failed", "ref", r.String(), "batch", len(work), "duration", time.Since(start), "error", res[i].err)
		} else {
			s.e.opts.Logger.Debug("fetched", "ref", r.String(), "batch", len(work), "keys", len(res[i].secret.Data), "duration", time.Since(start))
		}
	}
}

// Finish waits for every fetch and substitutes, in the order of docs (every added document
// must be listed). On any problem it returns *Error and the documents must be discarded.
func (s *Session) Finish(docs []*manifest.Document) (Stats, error) {
	s.mu.Lock()
	rest := s.batches
	s.batches = nil
	s.mu.Unlock()
	for _, b := range rest {
		s.dispatch(b)
	}
	close(s.queue)
	s.workers.Wait()
	for _, work := range s.pending {
		s.fetch(work)
	}
	stats := Stats{Documents: len(docs), Fetches: len(s.results)}
	if s.overflow != nil {
		return stats, &Error{Problems: []Problem{*s.overflow}}
	}
	// Documents substitute independently; spread them over the cores, then report problems
	// in input order.
	states := make([]*docState, len(docs))
	for i, d := range docs {
		states[i] = s.docs[d]
	}
	var refs atomic.Int64
	parallel.For(len(states), func(i int) {
		st := states[i]
		if st == nil {
			return
		}
		for _, site := range st.sites {
			ps := substitute(site, s.results)
			if len(ps) == 0 {
				refs.Add(int64(len(site.refs)))
			}
			st.problems = append(st.problems, ps...)
		}
	})
	stats.References = int(refs.Load())
	var problems []Problem
	for _, st := range states {
		if st != nil {
			problems = append(problems, st.problems...)
		}
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
	if dc.genericPath != "" {
		if err := reference.CheckPath(dc.genericPath); err != nil {
			return dc, false, fmt.Errorf("annotation %s: %q is not a canonical secret path: %v", AnnotationPath, dc.genericPath, err)
		}
	}
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

// seg is one step of a field path: a mapping key or a sequence index.
type seg struct {
	key string
	idx int // -1 for a key
}

func formatPath(path []seg) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case p.idx >= 0:
			b.WriteString("[" + strconv.Itoa(p.idx) + "]")
		case strings.ContainsAny(p.key, ".[]"):
			b.WriteString("[" + strconv.Quote(p.key) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.key)
		}
	}
	return b.String()
}

func (w *walker) walk(n, parent *yaml.Node, path []seg) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], n, append(path, seg{key: n.Content[i].Value, idx: -1}))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			w.walk(c, n, append(path, seg{idx: i}))
		}
	case yaml.ScalarNode:
		w.scalar(n, parent, path)
	}
	// Aliases are not followed: the anchored node is visited where it is defined, and
	// substituting it in place updates every alias.
}

func (w *walker) scalar(n, parent *yaml.Node, path []seg) {
	value := n.Value
	dataField := len(path) == 2 && path[1].idx < 0 && (path[0].key == "data" || path[0].key == "stringData" || path[0].key == "binaryData")
	isSecretData := w.dc.kind == "Secret" && dataField && path[0].key == "data"
	hit := reference.Contains(value)
	if !hit && !isSecretData {
		return
	}
	// Only strings hold references; checking the tag resolves the scalar, so it comes after
	// the cheap test above.
	if !manifest.IsString(n) {
		return
	}
	m := modeTyped
	if dataField && (w.dc.kind == "ConfigMap" || w.dc.kind == "Secret") {
		m = modeString
	}
	if hit {
		w.add(n, parent, path, value, m)
		return
	}
	// A base64 value whose decoded text holds placeholders: decode, substitute, re-encode.
	if dec, err := base64.StdEncoding.DecodeString(value); err == nil && reference.Contains(string(dec)) {
		w.add(n, parent, path, string(dec), modeBase64)
	}
}

func (w *walker) add(n, parent *yaml.Node, path []seg, text string, m mode) {
	tmpl, err := reference.Parse(text, reference.Options{Generic: w.dc.genericPath != ""})
	if err != nil {
		w.problems = append(w.problems, Problem{Source: w.doc.Source, Document: w.doc.Index, Field: formatPath(path), Reason: err.Error()})
		return
	}
	if !tmpl.HasPlaceholders() {
		return
	}
	s := &site{doc: w.doc, path: slices.Clone(path), parent: parent, node: n, tmpl: tmpl, mode: m, kind: w.dc.kind, removable: w.dc.removeMissing}
	for _, part := range tmpl.Parts {
		if part.Placeholder == nil {
			continue
		}
		ref, err := w.ref(part.Placeholder)
		if err == nil && w.engine.opts.Check != nil {
			err = w.engine.opts.Check(ref)
		}
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
			path, err := confineFile(w.doc, p.Path)
			if err != nil {
				return providers.Ref{}, err
			}
			ref.Path = path
		}
		return ref, nil
	}
}

// confineFile resolves a ref+file:// path against the manifest's directory and refuses one that
// leaves the render root, following symbolic links.
func confineFile(d *manifest.Document, p string) (string, error) {
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
	_, ok := confine.Rel(root, path)
	return ok
}

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
