package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

// Provider builds Vault clients.
type Provider struct{}

var _ providers.Provider = Provider{}

// Name implements providers.Provider.
func (Provider) Name() string { return "vault" }

// Validate implements providers.Provider.
func (Provider) Validate(s providers.Settings) error {
	_, err := validate(s)
	return err
}

// Open implements providers.Provider: it validates the settings, builds the HTTP client and
// logs in.
func (Provider) Open(ctx context.Context, cfg providers.Config) (providers.Client, error) {
	o, err := parseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// An explicit Config, and token and namespace set below, so that nothing but keyway's
	// own settings decides where requests go.
	vc := vaultapi.DefaultConfig()
	vc.Address = o.address
	vc.AgentAddress = ""
	vc.MaxRetries = o.maxRetries
	vc.Timeout = o.timeout
	vc.MinRetryWait = 100 * time.Millisecond
	vc.MaxRetryWait = 2 * time.Second
	vc.Limiter = nil
	tls := &vaultapi.TLSConfig{
		CACert:        o.s[SettingCACert],
		CAPath:        o.s[SettingCAPath],
		ClientCert:    o.s[SettingClientCert],
		ClientKey:     o.s[SettingClientKey],
		TLSServerName: o.s[SettingTLSServerName],
		Insecure:      o.skipVerify,
	}
	if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
		t.TLSClientConfig.InsecureSkipVerify = false
		t.MaxIdleConnsPerHost = o.maxInFlight
	}
	if err := vc.ConfigureTLS(tls); err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	api, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", o.address, err)
	}
	api.ClearToken()
	api.ClearNamespace()
	if o.namespace != "" {
		api.SetNamespace(o.namespace)
	}
	api.SetHeaders(http.Header{vaultapi.RequestHeaderName: []string{"true"}})
	c := &Client{
		api:    api,
		opts:   o,
		log:    log,
		sem:    make(chan struct{}, o.maxInFlight),
		mounts: map[string]*mountLookup{},
		stop:   make(chan struct{}),
	}
	if err := c.login(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Client reads KV secrets. It is safe for concurrent use.
type Client struct {
	api  *vaultapi.Client
	opts *options
	log  *slog.Logger
	sem  chan struct{}

	loginMu  sync.Mutex // one login at a time
	authMu   sync.Mutex // guards the fields below
	token    string
	gen      int           // increments with every login
	ttl      time.Duration // of a renewable token; 0 when not renewing
	renewing bool

	mountMu sync.Mutex
	mounts  map[string]*mountLookup // by first path segment, then refined

	metadataDenied sync.Map // namespace and mount whose KV v2 metadata the token may not read

	stop      chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup
}

var _ providers.Client = (*Client)(nil)

// Close stops token renewal and revokes the token the client logged in for (never a token
// it was given), so a long-lived process leaves no lease behind in Vault.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.bg.Wait()
		c.authMu.Lock()
		tok := c.token
		c.authMu.Unlock()
		if !c.canLogin() || tok == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if rerr := c.api.Auth().Token().RevokeSelfWithContext(ctx, ""); rerr != nil {
			err = classify(rerr, "revoke the login token")
			c.log.Warn("could not revoke the login token", "error", err)
		}
	})
	return err
}

// Fetch implements providers.Client. Ref.Path is a KV path as argocd-vault-plugin users
// write it (secret/data/app for KV v2, or secret/app with the data/ inserted for them);
// Ref.Version pins a KV v2 version; Ref.Params may carry kv-version=1|2 and namespace=NS.
func (c *Client) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	t, release, err := c.target(ctx, ref)
	if err != nil {
		return providers.Secret{}, err
	}
	defer release()
	if params, _ := url.ParseQuery(ref.Params); params.Get(ParamMetadata) == "custom" {
		return c.customMetadata(ctx, t)
	}
	query := map[string][]string{}
	if ref.Version != "" {
		query["version"] = []string{ref.Version}
	}
	secret, err := c.read(ctx, t.apiPath, t.ns, query)
	if err != nil {
		return providers.Secret{}, err
	}
	if secret == nil || secret.Data == nil {
		return providers.Secret{}, fmt.Errorf("%w: vault path %q%s", providers.ErrNotFound, t.path, versionText(ref.Version))
	}
	if t.kv == 1 {
		return providers.Secret{Data: secret.Data}, nil
	}
	data, _ := secret.Data["data"].(map[string]any)
	if data == nil {
		// A deleted or destroyed version answers with metadata only.
		return providers.Secret{}, fmt.Errorf("%w: vault path %q%s (deleted or destroyed)", providers.ErrNotFound, t.path, versionText(ref.Version))
	}
	out := providers.Secret{Data: data}
	if md, ok := secret.Data["metadata"].(map[string]any); ok {
		out.Version = fmt.Sprint(md["version"])
	}
	return out, nil
}

// kvTarget is where a reference is read: the KV version of its mount, the API path of its
// data (and, for KV v2, of its metadata) and the Vault namespace.
type kvTarget struct {
	path, ns, mount       string
	kv                    int
	apiPath, metadataPath string
}

// target checks ref (canonical path, path validation, namespace, version) and resolves
// where it is read, holding one of the client's request slots until release is called.
func (c *Client) target(ctx context.Context, ref providers.Ref) (t kvTarget, release func(), err error) {
	params, err := url.ParseQuery(ref.Params)
	if err != nil {
		return t, nil, fmt.Errorf("%s: malformed parameters", ref)
	}
	// Vault's router cleans paths; only a canonical one means what a policy check saw.
	if err := reference.CheckPath(ref.Path); err != nil {
		return t, nil, fmt.Errorf("%w: vault path %q is not canonical: %v", providers.ErrPermissionDenied, ref.Path, err)
	}
	t.path = strings.Trim(ref.Path, "/")
	if re := c.opts.pathValidation; re != nil && !re.MatchString(t.path) {
		return t, nil, fmt.Errorf("vault path %q does not match the path validation pattern", t.path)
	}
	t.ns = c.opts.namespace
	if v := params.Get("namespace"); v != "" && v != t.ns {
		if !slices.Contains(c.opts.allowedNamespaces, v) && !slices.Contains(c.opts.allowedNamespaces, "*") {
			return t, nil, fmt.Errorf("vault path %q: namespace %q is not allowed (the operator lists allowed namespaces in %s)", t.path, v, SettingAllowedNamespaces)
		}
		t.ns = v
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return t, nil, fmt.Errorf("vault path %q: %w: %w", t.path, providers.ErrUnavailable, ctx.Err())
	}
	release = func() { <-c.sem }
	t.mount, t.kv, err = c.kvVersion(ctx, t.path, t.ns, params.Get("kv-version"))
	if err != nil {
		release()
		return t, nil, err
	}
	switch t.kv {
	case 1:
		if ref.Version != "" {
			release()
			return t, nil, fmt.Errorf("vault path %q: KV v1 mount %q has no versions", t.path, t.mount)
		}
		t.apiPath = t.path
	default:
		mount := strings.TrimSuffix(t.mount, "/")
		rest := strings.TrimPrefix(strings.TrimPrefix(t.path, mount), "/")
		rest = strings.TrimPrefix(rest, "data/")
		t.apiPath = mount + "/data/" + rest
		t.metadataPath = mount + "/metadata/" + rest
		if ref.Version != "" {
			if _, err := strconv.Atoi(ref.Version); err != nil {
				release()
				return t, nil, fmt.Errorf("vault path %q: version %q is not a number", t.path, ref.Version)
			}
		}
	}
	return t, release, nil
}

func versionText(v string) string {
	if v == "" {
		return ""
	}
	return " version " + v
}

// read performs one logical read with the current token, logging in again once if the token
// turns out to have expired.
func (c *Client) read(ctx context.Context, path, ns string, query map[string][]string) (*vaultapi.Secret, error) {
	for attempt := 0; ; attempt++ {
		api, gen := c.current(ns)
		secret, err := api.Logical().ReadWithDataWithContext(ctx, path, query)
		if err == nil {
			return secret, nil
		}
		var re *vaultapi.ResponseError
		if attempt == 0 && errors.As(err, &re) && re.StatusCode == http.StatusForbidden && c.canLogin() && !c.tokenValid(ctx, api) {
			c.log.Info("vault token rejected; logging in again", "method", c.opts.method)
			if lerr := c.relogin(ctx, gen); lerr != nil {
				return nil, lerr
			}
			continue
		}
		return nil, classify(err, fmt.Sprintf("vault read %q", path))
	}
}

// current returns a client carrying the current token (and namespace) and the login
// generation it belongs to.
func (c *Client) current(ns string) (*vaultapi.Client, int) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	api := c.api
	if ns != c.opts.namespace {
		api = api.WithNamespace(ns)
	}
	return api, c.gen
}

func (c *Client) tokenValid(ctx context.Context, api *vaultapi.Client) bool {
	_, err := api.Auth().Token().LookupSelfWithContext(ctx)
	return err == nil
}

// classify maps a Vault API error onto the provider sentinels. The response's error strings
// are Vault's own ("permission denied"), never secret data.
func classify(err error, what string) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		// A body Vault did not write (a proxy's page, say) is not relayed at all; Vault's
		// own errors are, cut short.
		msg := "response body omitted: not Vault's JSON"
		if !re.RawError {
			msg = redact.Upstream(strings.Join(re.Errors, "; "))
		}
		switch {
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %s", providers.ErrNotFound, what)
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("%w: %s: %s", providers.ErrPermissionDenied, what, msg)
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			return fmt.Errorf("%w: %s: HTTP %d: %s", providers.ErrUnavailable, what, re.StatusCode, msg)
		default:
			return fmt.Errorf("%s: HTTP %d: %s", what, re.StatusCode, msg)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", providers.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %s", providers.ErrUnavailable, what, redact.Upstream(err.Error()))
}

// readFile reads a credential file, trimming white space. The error names the file only.
func readFile(setting, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("setting %q: %w", setting, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("setting %q: file %q is empty", setting, path)
	}
	return v, nil
}
