// Package gcpsm reads secrets from GCP Secret Manager with the official client. Each
// distinct secret version is one AccessSecretVersion call, issued concurrently by the render
// engine. A JSON payload exposes its keys (argocd-vault-plugin only returns the whole payload);
// any other payload is one value, under the key "value" and as the whole secret.
package gcpsm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/oauth"
	"google.golang.org/grpc/status"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/providers"
)

// Setting names.
const (
	SettingEndpoint        = "endpoint"         // host:port; default the global or regional Google endpoint
	SettingCredentialsFile = "credentials-file" // a service-account key file; default Application Default Credentials
	SettingCAFile          = "ca-file"          // TLS roots for an overridden endpoint (tests)
	SettingAccessToken     = "access-token"     // a static bearer token (tests, CI)
	SettingMaxAttempts     = "max-attempts"
	// SettingCredentialsJSON is a service-account key itself (the JSON Google issues), held
	// in memory: what the syncer reads from a SecretStore's Secret.
	SettingCredentialsJSON = "credentials-json"
	// SettingTokenURL is where service-account keys are exchanged for access tokens
	// (default Google's). A key whose token_uri names another address is refused, so a key
	// cannot send keyway's requests elsewhere; only the operator moves it (tests, proxies).
	SettingTokenURL = "token-url"
)

// googleTokenURL is Google's OAuth 2.0 token endpoint for service-account keys.
const googleTokenURL = "https://oauth2.googleapis.com/token"

const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

var known = []string{SettingEndpoint, SettingCredentialsFile, SettingCAFile, SettingAccessToken, SettingMaxAttempts, SettingCredentialsJSON, SettingTokenURL}

// Provider builds Secret Manager clients.
type Provider struct{}

var _ providers.Provider = Provider{}

// Name implements providers.Provider.
func (Provider) Name() string { return "gcpsm" }

// Validate implements providers.Provider.
func (Provider) Validate(s providers.Settings) error {
	if err := s.Check(known...); err != nil {
		return err
	}
	if _, err := s.Int(SettingMaxAttempts, 5, 1); err != nil {
		return err
	}
	if s[SettingCredentialsJSON] != "" && (s[SettingCredentialsFile] != "" || s[SettingAccessToken] != "") {
		return fmt.Errorf("setting %q: give one of %q, %q and %q", SettingCredentialsJSON, SettingCredentialsJSON, SettingCredentialsFile, SettingAccessToken)
	}
	if u := s[SettingTokenURL]; u != "" {
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Host == "" {
			return fmt.Errorf("setting %q: want an https URL", SettingTokenURL)
		}
	}
	return nil
}

// Open implements providers.Provider. Connections are made per endpoint on first use.
func (Provider) Open(ctx context.Context, cfg providers.Config) (providers.Client, error) {
	s := cfg.Settings
	if err := (Provider{}).Validate(s); err != nil {
		return nil, err
	}
	c := &Client{s: s, clients: map[string]*secretmanager.Client{}}
	c.attempts, _ = s.Int(SettingMaxAttempts, 5, 1)
	if f := s[SettingCAFile]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %w", SettingCAFile, err)
		}
		c.roots = x509.NewCertPool()
		if !c.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("setting %q: %q holds no PEM certificate", SettingCAFile, f)
		}
	}
	if key := s[SettingCredentialsJSON]; key != "" {
		ts, err := keyTokenSource([]byte(key), s[SettingTokenURL], c.roots)
		if err != nil {
			return nil, err
		}
		c.tokens = ts
	}
	c.log = cfg.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Client reads secret versions.
type Client struct {
	s        providers.Settings
	roots    *x509.CertPool
	tokens   oauth2.TokenSource // from SettingCredentialsJSON
	attempts int
	log      *slog.Logger

	mu      sync.Mutex
	clients map[string]*secretmanager.Client // by endpoint ("" for the default)
	// getDenied: GetSecretVersion was refused once; rotation checks read values.
	getDenied bool
}

var _ providers.Client = (*Client)(nil)

// Close implements providers.Client.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cl := range c.clients {
		errs = append(errs, cl.Close())
	}
	c.clients = map[string]*secretmanager.Client{}
	return errors.Join(errs...)
}

// Location is a GCP location name ("us-central1"), the only part of a reference that
// chooses an address: a regional endpoint is built from a Location, never from reference
// text, and ParseLocation admits only [a-z0-9-] names.
type Location string

var locationName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ParseLocation checks that s is a location name.
func ParseLocation(s string) (Location, error) {
	if !locationName.MatchString(s) {
		return "", fmt.Errorf("location %q is not a GCP location name (lower-case letters, digits and '-')", s)
	}
	return Location(s), nil
}

func (c *Client) client(ctx context.Context, location Location) (*secretmanager.Client, error) {
	endpoint := c.s[SettingEndpoint]
	if endpoint == "" && location != "" {
		endpoint = "secretmanager." + string(location) + ".rep.googleapis.com:443"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[endpoint]; ok {
		return cl, nil
	}
	var opts []option.ClientOption
	if tok := c.s[SettingAccessToken]; tok != "" || c.roots != nil {
		// An explicit connection: TLS with the given roots and a bearer token per call.
		creds := credentials.NewClientTLSFromCert(c.roots, "")
		dial := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
		switch {
		case tok != "":
			dial = append(dial, grpc.WithPerRPCCredentials(oauth.TokenSource{TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})}))
		case c.tokens != nil:
			dial = append(dial, grpc.WithPerRPCCredentials(oauth.TokenSource{TokenSource: c.tokens}))
		}
		target := endpoint
		if target == "" {
			target = "secretmanager.googleapis.com:443"
		}
		conn, err := grpc.NewClient(target, dial...)
		if err != nil {
			return nil, fmt.Errorf("connect %q: %w", target, err)
		}
		opts = append(opts, option.WithGRPCConn(conn))
	} else {
		if endpoint != "" {
			opts = append(opts, option.WithEndpoint(endpoint))
		}
		if f := c.s[SettingCredentialsFile]; f != "" {
			opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, f))
		}
		if c.tokens != nil {
			opts = append(opts, option.WithTokenSource(c.tokens))
		}
	}
	cl, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: GCP Secret Manager client: %v", providers.ErrNotConfigured, err)
	}
	c.clients[endpoint] = cl
	return cl, nil
}

var (
	projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]{0,99}$`)
	secretName  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	versionName = regexp.MustCompile(`^([0-9]{1,20}|latest)$`)
)

// parse splits projects/P[/locations/L]/secrets/S[/versions/V] and applies ref.Version.
// Every part must be a name of its kind, so nothing in the reference reaches the address
// but a checked Location.
func parse(ref providers.Ref) (name string, location Location, err error) {
	parts := strings.Split(strings.Trim(ref.Path, "/"), "/")
	var version, loc string
	switch {
	case len(parts) == 4 && parts[0] == "projects" && parts[2] == "secrets":
	case len(parts) == 6 && parts[0] == "projects" && parts[2] == "secrets" && parts[4] == "versions":
		version = parts[5]
		parts = parts[:4]
	case len(parts) == 6 && parts[0] == "projects" && parts[2] == "locations" && parts[4] == "secrets":
		loc = parts[3]
	case len(parts) == 8 && parts[0] == "projects" && parts[2] == "locations" && parts[4] == "secrets" && parts[6] == "versions":
		loc, version = parts[3], parts[7]
		parts = parts[:6]
	default:
		return "", "", fmt.Errorf("secret %q: want projects/P/secrets/S[/versions/V] or projects/P/locations/L/secrets/S", ref.Path)
	}
	if ref.Version != "" {
		version = ref.Version
	}
	if version == "" {
		version = "latest"
	}
	if !projectName.MatchString(parts[1]) {
		return "", "", fmt.Errorf("secret %q: the project is not a GCP project name", ref.Path)
	}
	if !secretName.MatchString(parts[len(parts)-1]) {
		return "", "", fmt.Errorf("secret %q: the secret is not a GCP secret name ([A-Za-z0-9_-])", ref.Path)
	}
	if !versionName.MatchString(version) {
		return "", "", fmt.Errorf("secret %q: version %q is not a number or latest", ref.Path, version)
	}
	if parts[2] == "locations" {
		if location, err = ParseLocation(loc); err != nil {
			return "", "", fmt.Errorf("secret %q: %w", ref.Path, err)
		}
	}
	return strings.Join(parts, "/") + "/versions/" + version, location, nil
}

var retryable = []codes.Code{codes.Unavailable, codes.ResourceExhausted}

// Fetch implements providers.Client.
func (c *Client) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	name, location, err := parse(ref)
	if err != nil {
		return providers.Secret{}, err
	}
	cl, err := c.client(ctx, location)
	if err != nil {
		return providers.Secret{}, err
	}
	retry := gax.WithRetry(func() gax.Retryer {
		return &boundedRetryer{inner: gax.OnCodes(retryable, gax.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}), left: c.attempts - 1}
	})
	resp, err := cl.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name}, retry)
	if err != nil {
		return providers.Secret{}, classify(err, fmt.Sprintf("secret %q", name))
	}
	data := resp.GetPayload().GetData()
	version := resp.GetName()
	if i := strings.LastIndex(version, "/"); i >= 0 {
		version = version[i+1:]
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err == nil && m != nil {
		return providers.Secret{Data: m, Version: version}, nil
	}
	return providers.Secret{Data: map[string]any{"value": string(data)}, Whole: string(data), Version: version}, nil
}

// boundedRetryer stops gax's code-based retryer after a number of attempts.
type boundedRetryer struct {
	inner gax.Retryer
	left  int
}

func (r *boundedRetryer) Retry(err error) (time.Duration, bool) {
	if r.left <= 0 {
		return 0, false
	}
	r.left--
	return r.inner.Retry(err)
}

func classify(err error, what string) error {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s: %w", providers.ErrUnavailable, what, err)
		}
		return fmt.Errorf("%w: %s: %s", providers.ErrUnavailable, what, redact.Upstream(err.Error()))
	}
	msg := redact.Upstream(st.Message())
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%w: %s", providers.ErrNotFound, what)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%w: %s: %s: %s", providers.ErrPermissionDenied, what, st.Code(), msg)
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Canceled, codes.Internal:
		return fmt.Errorf("%w: %s: %s: %s", providers.ErrUnavailable, what, st.Code(), msg)
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), msg)
}

// keyTokenSource exchanges a service-account key for access tokens at tokenURL (Google's
// by default), renewing them before they expire. Nothing of the key reaches an error.
func keyTokenSource(key []byte, tokenURL string, roots *x509.CertPool) (oauth2.TokenSource, error) {
	var k struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if json.Unmarshal(key, &k) != nil {
		return nil, fmt.Errorf("setting %q: not a service-account key (JSON)", SettingCredentialsJSON)
	}
	if k.Type != "service_account" || k.ClientEmail == "" || k.PrivateKey == "" {
		return nil, fmt.Errorf("setting %q: want a service-account key (type service_account, client_email, private_key)", SettingCredentialsJSON)
	}
	if tokenURL == "" {
		tokenURL = googleTokenURL
	}
	if k.TokenURI != "" && k.TokenURI != tokenURL {
		return nil, fmt.Errorf("setting %q: the key of %s sends its token requests to %q, not to %q; only the operator's %q setting moves them",
			SettingCredentialsJSON, k.ClientEmail, k.TokenURI, tokenURL, SettingTokenURL)
	}
	conf := &jwt.Config{Email: k.ClientEmail, PrivateKey: []byte(k.PrivateKey), PrivateKeyID: k.PrivateKeyID,
		Scopes: []string{cloudPlatformScope}, TokenURL: tokenURL}
	hc := &http.Client{Timeout: 30 * time.Second}
	if roots != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	// The source outlives any one request: its context only carries the HTTP client.
	return conf.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc)), nil
}
