package render

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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

// Fetcher resolves one secret; *providers.Clients is the production implementation. A
// Fetcher that is also a providers.BatchClient gets refs of one backend in batches.
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
		fmt.Fprintf(&b, ": %s", reference.Abbrev(p.Field))
	}
	if p.Reference != "" {
		fmt.Fprintf(&b, ": %s", reference.Abbrev(p.Reference))
	}
	fmt.Fprintf(&b, ": %s", reference.Abbrev(p.Reason))
	return b.String()
}

// maxListed bounds the problems an Error's message lists (Problems keeps them all).
const maxListed = 1000

// Error lists the problems of a failed render.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%d unresolved reference(s):", len(e.Problems)))
	for i, p := range e.Problems {
		if i == maxListed {
			lines = append(lines, fmt.Sprintf("  … and %d more", len(e.Problems)-maxListed))
			break
		}
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
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
