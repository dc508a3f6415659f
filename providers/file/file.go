package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sealing/agefile"
)

// Setting names accepted by Open.
const (
	SettingSecretsFile = "secrets-file" // path of the secrets file
	SettingAgeIdentity = "age-identity" // comma-separated age identity files
)

// maxFileBytes bounds any file this backend reads.
const maxFileBytes = 16 << 20

// Provider builds file clients.
type Provider struct{}

var _ providers.Provider = Provider{}

// Name implements providers.Provider.
func (Provider) Name() string { return "file" }

// Validate implements providers.Provider.
func (Provider) Validate(s providers.Settings) error {
	return s.Check(SettingSecretsFile, SettingAgeIdentity)
}

// Open implements providers.Provider. The secrets file, when set, is read and decrypted here,
// once.
func (Provider) Open(_ context.Context, cfg providers.Config) (providers.Client, error) {
	settings := cfg.Settings
	if err := (Provider{}).Validate(settings); err != nil {
		return nil, err
	}
	c := &Client{docs: map[string]*docEntry{}}
	for _, path := range settings.List(SettingAgeIdentity) {
		ids, err := readIdentities(path)
		if err != nil {
			return nil, err
		}
		c.identities = append(c.identities, ids...)
	}
	if path := settings[SettingSecretsFile]; path != "" {
		data, err := c.load(path)
		if err != nil {
			return nil, err
		}
		top, ok := data.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("secrets file %q: top level must be a mapping of secret paths", path)
		}
		c.secretsFile = path
		c.secrets = map[string]map[string]any{}
		for _, p := range slices.Sorted(maps.Keys(top)) {
			m, ok := top[p].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("secrets file %q: entry %q must be a mapping of keys", path, p)
			}
			c.secrets[p] = m
		}
	}
	return c, nil
}

// Client serves references from files.
type Client struct {
	identities  []age.Identity
	secretsFile string
	secrets     map[string]map[string]any

	mu   sync.Mutex
	docs map[string]*docEntry
}

type docEntry struct {
	once sync.Once
	data map[string]any
	err  error
}

var _ providers.Client = (*Client)(nil)

// Fetch implements providers.Client.
func (c *Client) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("%s: %w: %w", ref, providers.ErrUnavailable, err)
	}
	if filepath.IsAbs(ref.Path) {
		return c.fetchDocument(ref)
	}
	if c.secrets == nil {
		return providers.Secret{}, fmt.Errorf("%w: secret %q: no secrets file; set --secrets-file", providers.ErrNotConfigured, ref.Path)
	}
	key := ref.Path
	if ref.Version != "" {
		key += "@" + ref.Version
	}
	data, ok := c.secrets[key]
	if !ok {
		what := fmt.Sprintf("secret %q", ref.Path)
		if ref.Version != "" {
			what += fmt.Sprintf(" version %q", ref.Version)
		}
		return providers.Secret{}, fmt.Errorf("%w: %s in %s", providers.ErrNotFound, what, c.secretsFile)
	}
	return providers.Secret{Data: data, Version: ref.Version}, nil
}

func (c *Client) fetchDocument(ref providers.Ref) (providers.Secret, error) {
	if ref.Version != "" {
		return providers.Secret{}, fmt.Errorf("file %q: files have no versions (remove ?version=)", ref.Path)
	}
	c.mu.Lock()
	e, ok := c.docs[ref.Path]
	if !ok {
		e = &docEntry{}
		c.docs[ref.Path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		data, err := c.load(ref.Path)
		if err != nil {
			e.err = err
			return
		}
		m, ok := data.(map[string]any)
		if !ok {
			e.err = fmt.Errorf("file %q: top level must be a mapping", ref.Path)
			return
		}
		e.data = m
	})
	return providers.Secret{Data: e.data}, e.err
}

// Close implements providers.Client.
func (c *Client) Close() error { return nil }

// load reads, decrypts if age-encrypted, and parses a YAML or JSON file. Error messages
// name the file and line, never file content.
func (c *Client) load(path string) (any, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: file %q does not exist", providers.ErrNotFound, path)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("file %q is not a regular file", path)
	}
	if fi.Size() > maxFileBytes {
		return nil, fmt.Errorf("file %q is larger than %d bytes", path, maxFileBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if plain, encrypted, err := c.decrypt(path, raw); err != nil {
		return nil, err
	} else if encrypted {
		raw = plain
	} else if agefile.IsSealed(raw) {
		// Sealed value by value (keyway seal --age-recipient).
		plain, err := agefile.Open(raw, c.identities)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", path, err)
		}
		raw = plain
	}
	if isJSON(raw) {
		v, err := decodeJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", path, err)
		}
		return v, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("file %q: %s", path, syntaxOnly(err))
	}
	if n.Kind == 0 || len(n.Content) == 0 {
		return map[string]any{}, nil
	}
	var v any
	if err := n.Content[0].Decode(&v); err != nil {
		// Decode messages can quote values; say only where.
		return nil, fmt.Errorf("file %q: a value cannot be decoded (check tags such as !!binary)", path)
	}
	return v, nil
}

// isEncrypted reports whether data is an age file, armored or binary.
func isEncrypted(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) || bytes.HasPrefix(data, []byte("age-encryption.org/v1\n"))
}

func (c *Client) decrypt(path string, raw []byte) ([]byte, bool, error) {
	if !isEncrypted(raw) {
		return nil, false, nil
	}
	if len(c.identities) == 0 {
		return nil, true, fmt.Errorf("file %q is age-encrypted: pass --age-identity", path)
	}
	var r io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte(armor.Header)) {
		r = armor.NewReader(bytes.NewReader(bytes.TrimSpace(raw)))
	}
	dr, err := age.Decrypt(r, c.identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, true, fmt.Errorf("%w: file %q: none of the age identities can decrypt it", providers.ErrPermissionDenied, path)
		}
		return nil, true, fmt.Errorf("file %q: age decryption failed: %v", path, err)
	}
	plain, err := io.ReadAll(io.LimitReader(dr, maxFileBytes+1))
	if err != nil {
		return nil, true, fmt.Errorf("file %q: age decryption failed (corrupt or truncated)", path)
	}
	if len(plain) > maxFileBytes {
		return nil, true, fmt.Errorf("file %q decrypts to more than %d bytes", path, maxFileBytes)
	}
	return plain, true, nil
}

func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(io.LimitReader(f, 1<<20))
	if err != nil {
		// The parser's message may quote part of a malformed key line.
		return nil, fmt.Errorf("age identity file %q: malformed identity (want AGE-SECRET-KEY-1… lines)", path)
	}
	return ids, nil
}

// syntaxOnly keeps a YAML syntax error's position and drops anything that may quote content.
func syntaxOnly(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ":"); i > 0 {
			return msg[:i] + ": invalid YAML"
		}
	}
	return "invalid YAML"
}
