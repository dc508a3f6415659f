package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/providertest"
	"github.com/keyway-dev/keyway/providers/vault"
)

var (
	kube *testenv.Env
	vlt  *testenv.Vault
)

func TestMain(m *testing.M) {
	testenv.Run(m, &kube, func(ctx context.Context, e *testenv.Env) error {
		v, err := e.StartVault(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("testenv: vault ready in %s\n", v.StartupTime.Round(time.Millisecond))
		vlt = v
		return nil
	})
}

func open(t testing.TB, s providers.Settings) *vault.Client {
	t.Helper()
	c, err := openErr(t, s, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func openErr(t testing.TB, s providers.Settings, log *slog.Logger) (*vault.Client, error) {
	t.Helper()
	if s[vault.SettingAddress] == "" {
		s[vault.SettingAddress] = vlt.Addr
	}
	c, err := vault.Provider{}.Open(t.Context(), providers.Config{Settings: s, Logger: log})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c.(*vault.Client), nil
}

func put(t testing.TB, path string, data map[string]any) {
	t.Helper()
	if _, err := vlt.Root.Logical().WriteWithContext(context.Background(), path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func token(t testing.TB, policies ...string) string {
	t.Helper()
	s, err := vlt.Root.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: policies, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth.ClientToken
}

func asMap(kv map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range kv {
		out[k] = v
	}
	return out
}

func TestConformanceKV2(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) providertest.Seeded {
			for p, vs := range versions {
				put(t, "secret/data/conf2/"+p, map[string]any{"data": asMap(vs["1"])})
			}
			for p, kv := range secrets {
				put(t, "secret/data/conf2/"+p, map[string]any{"data": asMap(kv)})
			}
			return providertest.Seeded{
				Ref: func(p string) providers.Ref { return providers.Ref{Backend: "vault", Path: "secret/data/conf2/" + p} },
				Version: func(p, v string) providers.Ref {
					return providers.Ref{Backend: "vault", Path: "secret/data/conf2/" + p, Version: v}
				},
			}
		},
		Open: func(t *testing.T) providers.Client {
			return open(t, providers.Settings{vault.SettingToken: token(t, "reader")})
		},
	})
}

func TestConformanceKV1(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		NoVersions: true,
		Seed: func(t *testing.T, secrets map[string]map[string]string, _ map[string]map[string]map[string]string) providertest.Seeded {
			for p, kv := range secrets {
				put(t, "kv1/conf1/"+p, asMap(kv))
			}
			return providertest.Seeded{
				Ref: func(p string) providers.Ref { return providers.Ref{Backend: "vault", Path: "kv1/conf1/" + p} },
			}
		},
		Open: func(t *testing.T) providers.Client {
			return open(t, providers.Settings{vault.SettingToken: token(t, "reader")})
		},
	})
}

func TestAuthMethods(t *testing.T) {
	put(t, "secret/data/auth/app", map[string]any{"data": map[string]any{"k": "v"}})
	dir := t.TempDir()
	write := func(name, v string) string {
		p := dir + "/" + name
		if err := writeFile(p, v); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		settings providers.Settings
		wantErr  string
	}{
		{"token", providers.Settings{vault.SettingToken: token(t, "reader")}, ""},
		{"token file", providers.Settings{vault.SettingTokenFile: write("token", token(t, "reader")+"\n")}, ""},
		{"approle", providers.Settings{vault.SettingAuthMethod: "approle", vault.SettingRoleID: vlt.RoleID, vault.SettingSecretID: vlt.SecretID}, ""},
		{"approle from files", providers.Settings{vault.SettingAuthMethod: "approle", vault.SettingRoleIDFile: write("role", vlt.RoleID), vault.SettingSecretIDFile: write("sid", vlt.SecretID)}, ""},
		{"userpass", providers.Settings{vault.SettingAuthMethod: "userpass", vault.SettingUsername: vlt.Username, vault.SettingPasswordFile: write("pw", vlt.Password)}, ""},
		{"kubernetes (AVP's k8s)", providers.Settings{vault.SettingAuthMethod: "k8s", vault.SettingRole: "keyway", vault.SettingJWTFile: vlt.KubernetesJWTFile}, ""},
		{"jwt", providers.Settings{vault.SettingAuthMethod: "jwt", vault.SettingRole: "keyway", vault.SettingJWTFile: vlt.KubernetesJWTFile}, ""},
		{"wrong secret id", providers.Settings{vault.SettingAuthMethod: "approle", vault.SettingRoleID: vlt.RoleID, vault.SettingSecretID: "CANARY-wrong"}, "approle login"},
		{"wrong password", providers.Settings{vault.SettingAuthMethod: "userpass", vault.SettingUsername: vlt.Username, vault.SettingPassword: "CANARY-wrong"}, "userpass login"},
		{"kubernetes wrong role", providers.Settings{vault.SettingAuthMethod: "kubernetes", vault.SettingRole: "nope", vault.SettingJWTFile: vlt.KubernetesJWTFile}, "kubernetes login"},
		{"no token", providers.Settings{}, "no Vault token"},
		{"unknown method", providers.Settings{vault.SettingAuthMethod: "ldap"}, `setting "auth-method": "ldap" is not one of token, approle, kubernetes, userpass, jwt`},
		{"unknown setting", providers.Settings{"adress": "x"}, `setting "adress": unknown setting (did you mean "address"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := openErr(t, tt.settings, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "CANARY") {
					t.Fatalf("error leaks a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			s, err := c.Fetch(t.Context(), providers.Ref{Backend: "vault", Path: "secret/data/auth/app"})
			if err != nil || s.Data["k"] != "v" {
				t.Fatalf("Fetch = %v, %v", s.Data, err)
			}
		})
	}
}

func writeFile(p, v string) error { return os.WriteFile(p, []byte(v), 0o600) }

func TestPathsAndVersions(t *testing.T) {
	// A fresh path per run, so the version numbers below hold when the test is re-run
	// against the same Vault.
	app := fmt.Sprintf("paths/app-%d", time.Now().UnixNano())
	put(t, "secret/data/"+app, map[string]any{"data": map[string]any{"v": "one"}})
	put(t, "secret/data/"+app, map[string]any{"data": map[string]any{"v": "two"}})
	c := open(t, providers.Settings{vault.SettingToken: token(t, "reader")})
	tests := []struct {
		name    string
		ref     providers.Ref
		want    string
		wantErr error
	}{
		{"AVP style with data/", providers.Ref{Path: "secret/data/" + app}, "two", nil},
		{"data/ inserted", providers.Ref{Path: "secret/" + app}, "two", nil},
		{"leading slash", providers.Ref{Path: "/secret/" + app}, "two", nil},
		{"version 1", providers.Ref{Path: "secret/" + app, Version: "1"}, "one", nil},
		{"version 3 missing", providers.Ref{Path: "secret/" + app, Version: "3"}, "", providers.ErrNotFound},
		{"no mount is refused for a narrow token", providers.Ref{Path: "nomount/x"}, "", providers.ErrPermissionDenied},
		{"kv-version=1 forced on a v2 mount reads raw", providers.Ref{Path: "secret/data/" + app, Params: "kv-version=1"}, "", nil},
		{"namespace not allowed", providers.Ref{Path: "secret/" + app, Params: "namespace=team-a"}, "", nil},
	}
	root := open(t, providers.Settings{vault.SettingToken: vlt.RootToken})
	if _, err := root.Fetch(t.Context(), providers.Ref{Path: "nomount/x"}); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("no mount, root token: err = %v, want ErrNotFound", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Fetch(t.Context(), tt.ref)
			switch tt.name {
			case "kv-version=1 forced on a v2 mount reads raw":
				if err != nil || s.Data["data"] == nil {
					t.Fatalf("got %v, %v; want the raw v2 envelope", s.Data, err)
				}
				return
			case "namespace not allowed":
				if err == nil || !strings.Contains(err.Error(), `namespace "team-a" is not allowed`) {
					t.Fatalf("err = %v, want the namespace refused", err)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.Data["v"] != tt.want {
				t.Fatalf("got %v, %v; want v=%q", s.Data, err, tt.want)
			}
		})
	}
}

func TestPermissionDeniedAndPathValidation(t *testing.T) {
	if err := vlt.Root.Sys().PutPolicy("only-secret", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	put(t, "kv1/denied", map[string]any{"k": "CANARY-denied"})
	c := open(t, providers.Settings{vault.SettingToken: token(t, "only-secret")})
	_, err := c.Fetch(t.Context(), providers.Ref{Path: "kv1/denied"})
	if !errors.Is(err, providers.ErrPermissionDenied) || strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("err = %v, want ErrPermissionDenied without the value", err)
	}
	v := open(t, providers.Settings{vault.SettingToken: token(t, "reader"), vault.SettingPathValidation: `^secret/data/[a-z/]+$`})
	if _, err := v.Fetch(t.Context(), providers.Ref{Path: "kv1/denied"}); err == nil || !strings.Contains(err.Error(), "path validation") {
		t.Fatalf("err = %v, want the path validation refusal", err)
	}
}

// TestMountLookupForbidden: when the mount lookup is refused (a policy or a proxy in front
// of Vault answering 403), keyway falls back to the configured KV version, with a hint in the
// log, instead of failing. Vault itself answers through the proxy for everything else.
func TestMountLookupForbidden(t *testing.T) {
	put(t, "secret/data/nomounts/app", map[string]any{"data": map[string]any{"k": "v"}})
	put(t, "kv1/nomounts/app", map[string]any{"k": "v1"})
	proxy, counts := countingProxy(t, "/v1/sys/internal/ui/mounts/")
	for _, tt := range []struct {
		name     string
		settings providers.Settings
		path     string
		want     string
	}{
		{"default KV v2", providers.Settings{}, "secret/nomounts/app", "v"},
		{"configured KV v1", providers.Settings{vault.SettingKVVersion: "1"}, "kv1/nomounts/app", "v1"},
		{"per-mount versions skip the lookup", providers.Settings{vault.SettingKVVersions: "kv1=1,secret=2"}, "kv1/nomounts/app", "v1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.settings[vault.SettingAddress] = proxy
			tt.settings[vault.SettingToken] = token(t, "reader")
			before := counts.prefix("/v1/sys/internal/ui/mounts/")
			c, err := openErr(t, tt.settings, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Fetch(t.Context(), providers.Ref{Path: tt.path})
			if err != nil || s.Data["k"] != tt.want {
				t.Fatalf("Fetch = %v, %v; want k=%q through the fallback", s.Data, err, tt.want)
			}
			lookups := counts.prefix("/v1/sys/internal/ui/mounts/") - before
			if tt.settings[vault.SettingKVVersions] != "" {
				if lookups != 0 {
					t.Fatalf("%d mount lookups with kv-versions set, want 0", lookups)
				}
				return
			}
			if lookups != 1 || !strings.Contains(logs.String(), "mount lookup not permitted") || !strings.Contains(logs.String(), "kv-versions") {
				t.Fatalf("lookups = %d; want 1 and a hint logged:\n%s", lookups, logs.String())
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c := open(t, providers.Settings{vault.SettingAddress: addr, vault.SettingToken: "t", vault.SettingMaxRetries: "0"})
	_, err := c.Fetch(t.Context(), providers.Ref{Path: "secret/x"})
	if !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestReloginOnExpiredToken: a login whose token expires is renewed by logging in again
// exactly once, transparently to the caller.
func TestReloginOnExpiredToken(t *testing.T) {
	if _, err := vlt.Root.Logical().Write("auth/approle/role/short", map[string]any{"token_policies": "reader", "token_ttl": "2s", "token_max_ttl": "2s"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := vlt.Root.Logical().Read("auth/approle/role/short/role-id")
	sid, _ := vlt.Root.Logical().Write("auth/approle/role/short/secret-id", nil)
	put(t, "secret/data/relogin/app", map[string]any{"data": map[string]any{"k": "v"}})
	proxy, counts := countingProxy(t)
	var logs bytes.Buffer
	c, err := openErr(t, providers.Settings{
		vault.SettingAddress: proxy, vault.SettingAuthMethod: "approle",
		vault.SettingRoleID: rid.Data["role_id"].(string), vault.SettingSecretID: sid.Data["secret_id"].(string),
	}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // past the token's max TTL
	s, err := c.Fetch(t.Context(), providers.Ref{Path: "secret/data/relogin/app"})
	if err != nil || s.Data["k"] != "v" {
		t.Fatalf("Fetch after expiry = %v, %v", s.Data, err)
	}
	if n := counts.get("/v1/auth/approle/login"); n != 2 {
		t.Fatalf("logins = %d, want 2 (the first and exactly one after expiry)\n%s", n, logs.String())
	}
}

// TestRenewal: with renew on, a renewable token is renewed before it expires.
func TestRenewal(t *testing.T) {
	if _, err := vlt.Root.Logical().Write("auth/approle/role/renew", map[string]any{"token_policies": "reader", "token_ttl": "3s", "token_max_ttl": "1m"}); err != nil {
		t.Fatal(err)
	}
	rid, _ := vlt.Root.Logical().Read("auth/approle/role/renew/role-id")
	sid, _ := vlt.Root.Logical().Write("auth/approle/role/renew/secret-id", nil)
	put(t, "secret/data/renew/app", map[string]any{"data": map[string]any{"k": "v"}})
	proxy, counts := countingProxy(t)
	c, err := openErr(t, providers.Settings{
		vault.SettingAddress: proxy, vault.SettingAuthMethod: "approle", vault.SettingRenew: "true",
		vault.SettingRoleID: rid.Data["role_id"].(string), vault.SettingSecretID: sid.Data["secret_id"].(string),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // renewals due at about 2 s, 4 s and 6 s
	if _, err := c.Fetch(t.Context(), providers.Ref{Path: "secret/data/renew/app"}); err != nil {
		t.Fatal(err)
	}
	if counts.get("/v1/auth/token/renew-self") < 2 || counts.get("/v1/auth/approle/login") != 1 {
		t.Fatalf("renewals = %d, logins = %d; want ≥2 renewals and the single login", counts.get("/v1/auth/token/renew-self"), counts.get("/v1/auth/approle/login"))
	}
}

type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[path]
}

func (c *counter) prefix(p string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.m {
		if strings.HasPrefix(k, p) {
			n += v
		}
	}
	return n
}

// countingProxy sits in front of the Vault server and counts requests by path; requests
// under a forbidden prefix get Vault's 403 answer.
func countingProxy(t testing.TB, forbidden ...string) (string, *counter) {
	target, _ := url.Parse(vlt.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &counter{m: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.m[r.URL.Path]++
		c.mu.Unlock()
		for _, p := range forbidden {
			if strings.HasPrefix(r.URL.Path, p) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, c
}

// TestErrorBodiesCut: what a proxy or server sends back is not relayed into errors: a page
// that is not Vault's JSON is omitted, Vault's own error text is cut short. The error still
// names the path and the status.
func TestErrorBodiesCut(t *testing.T) {
	const canary = "CANARY-body"
	for name, tc := range map[string]struct {
		status      int
		contentType string
		body        string
	}{
		"proxy page":      {http.StatusBadGateway, "text/html", "<html><body><h1>502</h1><p>upstream said: " + canary + "</p></body></html>"},
		"long json error": {http.StatusInternalServerError, "application/json", `{"errors":["` + strings.Repeat("internal error ", 40) + canary + `"]}`},
		"control chars":   {http.StatusBadRequest, "application/json", `{"errors":["bad\u001b[2J request\n\n` + strings.Repeat("x", 300) + canary + `"]}`},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			c := open(t, providers.Settings{vault.SettingAddress: srv.URL, vault.SettingToken: "t", vault.SettingMaxRetries: "0", vault.SettingKVVersions: "secret=2"})
			_, err := c.Fetch(t.Context(), providers.Ref{Path: "secret/app"})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, canary) || strings.ContainsAny(msg, "\n\x1b") || len(msg) > 400 {
				t.Fatalf("error relays the body (%d bytes): %q", len(msg), msg)
			}
			if !strings.Contains(msg, `"secret/data/app"`) || (tc.status >= 500 && !strings.Contains(msg, fmt.Sprint("HTTP ", tc.status))) {
				t.Fatalf("error lost the path or status: %q", msg)
			}
		})
	}
}

// TestCurrentVersion: KV v2 metadata names the version a read would get, without the
// value; a rotation, a deleted current version and a pin are told apart; KV v1 and a token
// that may read data/ but not metadata/ answer "" (the caller reads the value), and the
// refused mount is not asked again.
func TestCurrentVersion(t *testing.T) {
	app := fmt.Sprintf("secret/data/cv/app-%d", time.Now().UnixNano())
	put(t, app, map[string]any{"data": map[string]any{"k": "one"}})
	c := open(t, providers.Settings{vault.SettingToken: token(t, "reader")})
	ref := providers.Ref{Backend: "vault", Path: app}
	read, err := c.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.CurrentVersion(t.Context(), ref); err != nil || v != read.Version || v != "1" {
		t.Fatalf("current %q, %v; read %q", v, err, read.Version)
	}
	put(t, app, map[string]any{"data": map[string]any{"k": "two"}})
	if v, _ := c.CurrentVersion(t.Context(), ref); v != "2" {
		t.Fatalf("after a write: %q", v)
	}
	if v, _ := c.CurrentVersion(t.Context(), providers.Ref{Backend: "vault", Path: app, Version: "1"}); v != "1" {
		t.Fatalf("pinned: %q", v)
	}
	if _, err := vlt.Root.Logical().DeleteWithContext(t.Context(), app); err != nil { // deletes the current version
		t.Fatal(err)
	}
	if v, _ := c.CurrentVersion(t.Context(), ref); v == "2" || v == "" {
		t.Fatalf("a deleted current version: %q, want it told apart from 2", v)
	}
	put(t, "kv1/cv", map[string]any{"k": "v"})
	if v, err := c.CurrentVersion(t.Context(), providers.Ref{Backend: "vault", Path: "kv1/cv"}); v != "" || err != nil {
		t.Fatalf("KV v1: %q, %v", v, err)
	}

	if err := vlt.Root.Sys().PutPolicy("data-only", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	proxy, counts := countingProxy(t)
	narrow := open(t, providers.Settings{vault.SettingAddress: proxy, vault.SettingToken: token(t, "data-only"), vault.SettingKVVersion: "2"})
	for range 3 {
		if v, err := narrow.CurrentVersion(t.Context(), ref); v != "" || err != nil {
			t.Fatalf("metadata refused: %q, %v; want \"\" and no error", v, err)
		}
	}
	if n := counts.prefix("/v1/secret/metadata/"); n != 1 {
		t.Fatalf("%d metadata requests with a data-only token, want 1", n)
	}
}

// TestCustomMetadata: a reference with metadata=custom reads KV v2's custom_metadata, not
// the secret's values; KV v1 has none.
func TestCustomMetadata(t *testing.T) {
	app := fmt.Sprintf("secret/data/md/app-%d", time.Now().UnixNano())
	put(t, app, map[string]any{"data": map[string]any{"password": "CANARY-md"}})
	c := open(t, providers.Settings{vault.SettingToken: token(t, "reader")})
	ref := providers.Ref{Backend: "vault", Path: app, Params: vault.ParamMetadata + "=custom"}
	s, err := c.Fetch(t.Context(), ref)
	if err != nil || len(s.Data) != 0 || s.Whole != "" {
		t.Fatalf("no custom metadata yet: %v, %v", s.Data, err)
	}
	put(t, strings.Replace(app, "/data/", "/metadata/", 1), map[string]any{"custom_metadata": map[string]any{"owner": "team-a"}})
	s, err = c.Fetch(t.Context(), ref)
	if err != nil || s.Data["owner"] != "team-a" || len(s.Data) != 1 {
		t.Fatalf("custom metadata: %v, %v", s.Data, err)
	}
	if v, _ := c.CurrentVersion(t.Context(), ref); v != "" {
		t.Fatalf("a metadata reference has a version to compare (%q): metadata changes keep it", v)
	}
	put(t, "kv1/md", map[string]any{"k": "v"})
	if _, err := c.Fetch(t.Context(), providers.Ref{Backend: "vault", Path: "kv1/md", Params: vault.ParamMetadata + "=custom"}); err == nil {
		t.Fatal("KV v1 metadata read")
	}
}
