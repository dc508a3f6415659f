package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Sentinel errors. Providers wrap them (fmt.Errorf("…: %w", ErrNotFound)) so callers can decide
// policy with errors.Is while the message still names the reference.
var (
	// ErrNotFound: the backend answered and has no secret at that path or version.
	ErrNotFound = errors.New("secret not found")
	// ErrPermissionDenied: the backend refused the read (403, AccessDenied, PERMISSION_DENIED).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: the backend could not be reached or kept failing (5xx, throttling, timeouts).
	ErrUnavailable = errors.New("backend unreachable")
	// ErrNotConfigured: no provider is registered or configured under the reference's backend.
	ErrNotConfigured = errors.New("backend not configured")
)

// Ref names one secret in one backend: the unit of fetching and of de-duplication.
// Keys inside the secret are not part of it.
type Ref struct {
	Backend string // registry name: "file", "vault", "awssm", "gcpsm", …
	Path    string // backend-specific path, name or ARN
	Version string // empty means the backend's current version
	// Params holds backend options that change what is read (kv-version=1, a URI's query),
	// canonically encoded so equal references compare equal.
	Params string
}

func (r Ref) String() string {
	s := r.Backend + ":" + r.Path
	if r.Version != "" {
		s += "@" + r.Version
	}
	if r.Params != "" {
		s += "?" + r.Params
	}
	return s
}

// Secret is one fetched secret: its keys and the version that was read.
// Values are strings, numbers, bools, []byte, or nested map[string]any / []any
// for backends that store structured data.
type Secret struct {
	Data    map[string]any
	Version string
	// Whole is the secret as one value when the backend stores a single value (a plain-text
	// or binary secret); such backends also expose it as Data["value"]. A URI reference
	// without a JSON pointer selects Whole when set, Data otherwise.
	Whole any
}

// Result is one secret of a batch read.
type Result struct {
	Secret Secret
	Err    error
}

// BatchClient is a Client that reads several secrets in one call (AWS BatchGetSecretValue,
// SSM GetParameters). *Clients is one too, for all backends at once, and is what the
// render engine batches through.
type BatchClient interface {
	Client
	// BatchSize is the most refs like ref that one FetchBatch call takes, or 0 when ref
	// must be fetched alone (a pinned version, say).
	BatchSize(ctx context.Context, ref Ref) int
	// FetchBatch reads refs, all of one backend, returning one Result per ref in order,
	// under the same rules as Fetch.
	FetchBatch(ctx context.Context, refs []Ref) []Result
}

// Client reads secrets from one configured backend. It owns its connections.
type Client interface {
	// Fetch returns the secret that ref names. Errors wrap ErrNotFound, ErrPermissionDenied or
	// ErrUnavailable where they apply, name the reference and never contain a secret value.
	// Fetch must be safe for concurrent use and must return promptly once ctx is done.
	Fetch(ctx context.Context, ref Ref) (Secret, error)
	// Close releases connections; the client is unusable afterwards.
	Close() error
}

// Versioner is a Client that can tell which version of a secret is current without
// reading its value (Vault KV v2 metadata, Secrets Manager's DescribeSecret, GCP's version
// resource): what a poll asks to learn whether a secret it read has changed.
type Versioner interface {
	Client
	// CurrentVersion returns the version Fetch would read for ref now, comparable with
	// Secret.Version; "" when the backend cannot tell for this ref (no versions, or the
	// credentials may not read them), and the caller then reads the value. Errors follow
	// Fetch's rules.
	CurrentVersion(ctx context.Context, ref Ref) (string, error)
}

// Checker is a Client that can verify its credentials without reading a secret (a Vault
// token's lookup-self): what validating a store asks.
type Checker interface {
	Client
	Check(ctx context.Context) error
}

// Lister is a Client that can name the secrets under a path (Vault KV's LIST): the
// syncer's dataFrom.find. Paths are returned in full (prefix included), sorted, folders
// walked; at most limit are returned, and more is an error.
type Lister interface {
	Client
	List(ctx context.Context, prefix string, limit int) ([]string, error)
}

// Finder is a Client that can select secrets by name prefix and tags (Secrets Manager's
// ListSecrets with filters): every tag given must be on a secret with that value. Names are
// returned sorted; at most limit, and more is an error.
type Finder interface {
	Client
	Find(ctx context.Context, prefix string, tags map[string]string, limit int) ([]string, error)
}

// Settings configure one backend: flat keys (for example "secrets-file", "address") with string
// values, so flags, environment variables and config files all map onto them the same way.
// List values are comma-separated.
type Settings map[string]string

// List returns a comma-separated setting as a list, empty items dropped.
func (s Settings) List(key string) []string {
	var out []string
	for item := range strings.SplitSeq(s[key], ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Config is what a provider is opened with.
type Config struct {
	Settings Settings
	// Logger receives the provider's own records (login, renewal, fallbacks); never values.
	Logger *slog.Logger
}

// Provider is a stateless factory for one backend.
type Provider interface {
	// Name is the backend's registry name, as used in ref+NAME:// and --backend.
	Name() string
	// Validate checks settings without any I/O: every key known, every value well formed
	// (numbers, durations, choices). It does not require settings that only a fetch needs
	// (an address), so a command checks all of them when it starts, whether or not a
	// reference ends up using the backend. Errors are *SettingError where they concern one.
	Validate(s Settings) error
	// Open validates the settings and builds a client. An unknown or malformed setting is an
	// error naming the setting, never its value.
	Open(ctx context.Context, cfg Config) (Client, error)
}

// Registry holds the available providers by name.
type Registry struct {
	byName map[string]Provider
}

// NewRegistry returns a registry holding ps; it panics on a duplicate name, which is a
// programming error in main.
func NewRegistry(ps ...Provider) *Registry {
	r := &Registry{byName: map[string]Provider{}}
	for _, p := range ps {
		r.Register(p)
	}
	return r
}

// Register adds p and panics if its name is taken.
func (r *Registry) Register(p Provider) {
	if _, dup := r.byName[p.Name()]; dup {
		panic(fmt.Sprintf("providers: provider %q registered twice", p.Name()))
	}
	r.byName[p.Name()] = p
}

// Names lists the registered backends, sorted.
func (r *Registry) Names() []string { return slices.Sorted(maps.Keys(r.byName)) }

// Validate checks the settings of every backend in settings when the command starts. A
// backend that is not registered, or settings its provider refuses, are an error naming
// the backend and the setting.
func (r *Registry) Validate(settings map[string]Settings) error {
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		p, ok := r.byName[name]
		if !ok {
			return &SettingError{Backend: name, Key: "", Reason: "no such backend (known: " + strings.Join(r.Names(), ", ") + ")", Suggest: Nearest(name, r.Names())}
		}
		if err := p.Validate(settings[name]); err != nil {
			if se, ok := err.(*SettingError); ok {
				c := *se
				c.Backend = name
				return &c
			}
			return fmt.Errorf("backend %q: %w", name, err)
		}
	}
	return nil
}

// Lookup returns the provider registered under name.
func (r *Registry) Lookup(name string) (Provider, bool) {
	p, ok := r.byName[name]
	return p, ok
}

// Clients opens each backend's client the first time a reference needs it, so a render that
// never mentions Vault never contacts Vault, and hands the same client to every later caller.
type Clients struct {
	reg      *Registry
	settings map[string]Settings
	log      *slog.Logger

	pool *Pool // nil: clients are opened for this set and closed with it

	mu     sync.Mutex
	open   map[string]*lazyClient
	closed bool
}

type lazyClient struct {
	once   sync.Once
	client Client
	err    error
	pooled *poolEntry // drawn from a Pool: handed back on Close, not closed
}

// NewClients prepares lazily opened clients; settings is keyed by backend name. A nil
// logger discards.
func NewClients(reg *Registry, settings map[string]Settings, log *slog.Logger) *Clients {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Clients{reg: reg, settings: settings, log: log, open: map[string]*lazyClient{}}
}

// Fetch resolves ref through its backend's client.
func (c *Clients) Fetch(ctx context.Context, ref Ref) (Secret, error) {
	cl, err := c.Client(ctx, ref.Backend)
	if err != nil {
		return Secret{}, err
	}
	return cl.Fetch(ctx, ref)
}

var _ BatchClient = (*Clients)(nil)

// BatchSize implements BatchClient through ref's backend; 0 when that backend does not
// batch. Opening the backend's client is attempted here, so a backend that fails to open
// reports that through Fetch.
func (c *Clients) BatchSize(ctx context.Context, ref Ref) int {
	cl, err := c.Client(ctx, ref.Backend)
	if err != nil {
		return 0
	}
	bc, ok := cl.(BatchClient)
	if !ok {
		return 0
	}
	return bc.BatchSize(ctx, ref)
}

// FetchBatch reads refs of one backend through its BatchClient.
func (c *Clients) FetchBatch(ctx context.Context, refs []Ref) []Result {
	out := make([]Result, len(refs))
	cl, err := c.Client(ctx, refs[0].Backend)
	bc, ok := cl.(BatchClient)
	if err != nil || !ok {
		for i, r := range refs {
			out[i].Secret, out[i].Err = c.Fetch(ctx, r)
		}
		return out
	}
	return bc.FetchBatch(ctx, refs)
}

// CurrentVersion asks ref's backend which version of it is current, without reading the
// value; "" when the backend cannot tell (see Versioner).
func (c *Clients) CurrentVersion(ctx context.Context, ref Ref) (string, error) {
	cl, err := c.Client(ctx, ref.Backend)
	if err != nil {
		return "", err
	}
	if v, ok := cl.(Versioner); ok {
		return v.CurrentVersion(ctx, ref)
	}
	return "", nil
}

// Client returns the open client for backend, opening it on first use.
func (c *Clients) Client(ctx context.Context, backend string) (Client, error) {
	p, ok := c.reg.Lookup(backend)
	if !ok {
		return nil, fmt.Errorf("%w: no backend named %q (known: %s)", ErrNotConfigured, backend, strings.Join(c.reg.Names(), ", "))
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("providers: clients closed")
	}
	lc, ok := c.open[backend]
	if !ok {
		lc = &lazyClient{}
		c.open[backend] = lc
	}
	c.mu.Unlock()
	lc.once.Do(func() {
		if c.pool != nil {
			lc.client, lc.pooled, lc.err = c.pool.acquire(ctx, p, backend, c.settings[backend])
		} else {
			lc.client, lc.err = p.Open(ctx, Config{Settings: c.settings[backend], Logger: c.log.With("backend", backend)})
		}
		if lc.err != nil {
			lc.err = fmt.Errorf("backend %q: %w", backend, lc.err)
		}
	})
	return lc.client, lc.err
}

// Close closes every client that was opened.
func (c *Clients) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for _, lc := range c.open {
		switch {
		case lc.pooled != nil:
			c.pool.release(lc.pooled)
		case lc.client != nil:
			errs = append(errs, lc.client.Close())
		}
	}
	return errors.Join(errs...)
}

// List names the secrets under prefix in backend (see Lister), or says the backend cannot.
func (c *Clients) List(ctx context.Context, backend, prefix string, limit int) ([]string, error) {
	cl, err := c.Client(ctx, backend)
	if err != nil {
		return nil, err
	}
	l, ok := cl.(Lister)
	if !ok {
		return nil, fmt.Errorf("backend %q cannot list secrets", backend)
	}
	return l.List(ctx, prefix, limit)
}

// Find selects secrets in backend by name prefix and tags (see Finder); a backend that can
// only list (Vault) serves a search without tags.
func (c *Clients) Find(ctx context.Context, backend, prefix string, tags map[string]string, limit int) ([]string, error) {
	cl, err := c.Client(ctx, backend)
	if err != nil {
		return nil, err
	}
	if f, ok := cl.(Finder); ok {
		return f.Find(ctx, prefix, tags, limit)
	}
	if len(tags) > 0 {
		return nil, fmt.Errorf("backend %q cannot select secrets by tags", backend)
	}
	return c.List(ctx, backend, prefix, limit)
}
