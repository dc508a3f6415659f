package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/plugins/argocd/cmp"
	"github.com/keyway-dev/keyway/providers"
)

// TestServeLogsInOnce: a served sidecar logs into Vault once per backend configuration,
// not once per request: 100 generates with AppRole make one login; a request whose
// settings differ (here an allowed ARGOCD_ENV_AVP_KV_VERSION) gets a client of its own;
// shutting down revokes every token it logged in for.
func TestServeLogsInOnce(t *testing.T) {
	ctx := t.Context()
	_, v := clusterWithVault(t)
	if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/app", map[string]any{"data": map[string]any{"pw": "CANARY-pool"}}); err != nil {
		t.Fatal(err)
	}
	// Count what Vault is asked, by path.
	target, _ := url.Parse(v.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	calls := map[string]int{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	count := func(path string) int { mu.Lock(); defer mu.Unlock(); return calls[path] }

	dir := t.TempDir()
	secretID := filepath.Join(dir, "secret-id")
	os.WriteFile(secretID, []byte(v.SecretID), 0o600)
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "app"), 0o755)
	os.WriteFile(filepath.Join(repo, "app", "s.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  pw: <path:secret/data/app#pw>\n"), 0o644)

	var logs syncBuffer
	a := &app{streams: streams{in: strings.NewReader(""), out: &logs, err: &logs}, env: func(string) (string, bool) { return "", false }, environ: func() []string { return nil }}
	a.log = slog.New(slog.NewTextHandler(&logs, nil))
	h := &servedPlugin{a: a, pool: providers.NewPool(registry(), a.log, time.Hour), flags: []string{
		"--backend", "vault", "--vault-address", proxy.URL, "--vault-auth-method", "approle",
		"--vault-setting", "role-id=" + v.RoleID, "--vault-setting", "secret-id-file=" + secretID,
		"--argocd-allow-env", "AVP_KV_VERSION",
	}}
	if err := h.checkFlags(); err != nil {
		t.Fatal(err)
	}
	req := cmp.App{Name: "app", Root: repo, Dir: filepath.Join(repo, "app"), Env: []string{"ARGOCD_APP_NAME=shop", "ARGOCD_APP_NAMESPACE=shop", "ARGOCD_APP_SOURCE_PATH=app"}}
	for i := range 100 {
		out, err := h.Generate(ctx, req)
		if err != nil || len(out) != 1 || !strings.Contains(out[0], "pw: CANARY-pool") {
			t.Fatalf("generate %d: %v %q", i, err, out)
		}
	}
	if n := count("/v1/auth/approle/login"); n != 1 {
		t.Fatalf("100 generates made %d AppRole logins, want 1", n)
	}
	if n := count("/v1/secret/data/app"); n != 100 {
		t.Fatalf("%d reads, want one per generate (100)", n)
	}
	// Other settings, another client and login; the first client is untouched.
	other := req
	other.Env = append(append([]string(nil), req.Env...), "ARGOCD_ENV_AVP_KV_VERSION=2")
	if _, err := h.Generate(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Generate(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n, open := count("/v1/auth/approle/login"), h.pool.Open(); n != 2 || open != 2 {
		t.Fatalf("after a request with other settings: %d logins, %d pooled clients; want 2 and 2", n, open)
	}
	// Shutdown revokes what was logged in for.
	if err := h.pool.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count("/v1/auth/token/revoke-self"); n != 2 {
		t.Fatalf("%d tokens revoked at shutdown, want 2", n)
	}
	if strings.Contains(logs.String(), "CANARY") {
		t.Fatalf("the sidecar logged a value:\n%s", logs.String())
	}
}

// TestServeKubernetesLogin: the served sidecar with Vault's Kubernetes auth (a
// service-account token, as in a pod) makes one login for 100 generates and keeps that token
// renewed while requests keep coming (a role with a 3-second TTL); a request naming another
// role (an allowed ARGOCD_ENV_AVP_K8S_ROLE, another project's) logs in for itself and never
// reads with the first token; shutting down revokes both, and Vault no longer knows them.
func TestServeKubernetesLogin(t *testing.T) {
	ctx := t.Context()
	_, v := clusterWithVault(t)
	if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/app", map[string]any{"data": map[string]any{"pw": "CANARY-k8s"}}); err != nil {
		t.Fatal(err)
	}
	for role, ttl := range map[string]string{"short": "3s", "other-project": "1h"} {
		if _, err := v.Root.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+role, map[string]any{
			"bound_service_account_names": "keyway", "bound_service_account_namespaces": "default",
			"token_policies": "reader", "token_ttl": ttl, "token_max_ttl": "2h"}); err != nil {
			t.Fatal(err)
		}
	}
	target, _ := url.Parse(v.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	calls := map[string]int{}
	var readTokens []string // the token of each read of secret/data/app, in order
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		if r.URL.Path == "/v1/secret/data/app" {
			readTokens = append(readTokens, r.Header.Get("X-Vault-Token"))
		}
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	count := func(path string) int { mu.Lock(); defer mu.Unlock(); return calls[path] }
	lastToken := func() string { mu.Lock(); defer mu.Unlock(); return readTokens[len(readTokens)-1] }

	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "app"), 0o755)
	os.WriteFile(filepath.Join(repo, "app", "s.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  pw: <path:secret/data/app#pw>\n"), 0o644)
	var logs syncBuffer
	// The sidecar's own environment names the default role (the operator's); applications
	// may name theirs because the sidecar allows AVP_K8S_ROLE.
	sidecarEnv := func(k string) (string, bool) {
		if k == "AVP_K8S_ROLE" {
			return "short", true
		}
		return "", false
	}
	a := &app{streams: streams{in: strings.NewReader(""), out: &logs, err: &logs}, env: sidecarEnv, environ: func() []string { return []string{"AVP_K8S_ROLE=short"} }}
	a.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &servedPlugin{a: a, pool: providers.NewPool(registry(), a.log, time.Hour), flags: []string{
		"--backend", "vault", "--vault-address", proxy.URL, "--vault-auth-method", "kubernetes",
		"--vault-setting", "jwt-file=" + v.KubernetesJWTFile, "--argocd-allow-env", "AVP_K8S_ROLE",
	}}
	if err := h.checkFlags(); err != nil {
		t.Fatal(err)
	}
	req := cmp.App{Name: "app", Root: repo, Dir: filepath.Join(repo, "app"), Env: []string{"ARGOCD_APP_NAME=shop", "ARGOCD_APP_NAMESPACE=shop", "ARGOCD_APP_SOURCE_PATH=app"}}
	generate := func(req cmp.App) {
		t.Helper()
		out, err := h.Generate(ctx, req)
		if err != nil || len(out) != 1 || !strings.Contains(out[0], "pw: CANARY-k8s") {
			t.Fatalf("generate: %v %q", err, out)
		}
	}
	// 100 generates spread over about 5 s: the 3 s token must be renewed to serve them all.
	for range 100 {
		generate(req)
		time.Sleep(50 * time.Millisecond)
	}
	if n := count("/v1/auth/kubernetes/login"); n != 1 {
		t.Fatalf("100 generates made %d Kubernetes logins, want 1", n)
	}
	if n := count("/v1/auth/token/renew-self"); n < 1 {
		t.Fatalf("the 3 s token was renewed %d times over 5 s of requests", n)
	}
	first := lastToken()
	// Another project's role: its own login and token.
	other := req
	other.Env = append(append([]string(nil), req.Env...), "ARGOCD_ENV_AVP_K8S_ROLE=other-project")
	generate(other)
	second := lastToken()
	if second == first || second == "" {
		t.Fatalf("a request with another role read with the first role's token (logins %d, pooled %d)", count("/v1/auth/kubernetes/login"), h.pool.Open())
	}
	generate(req)
	if lastToken() != first {
		t.Fatal("the first role's requests moved to another token")
	}
	if n := count("/v1/auth/kubernetes/login"); n != 2 {
		t.Fatalf("%d Kubernetes logins after a second role, want 2", n)
	}
	// Shutdown revokes both; Vault no longer knows them.
	if err := h.pool.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{first, second} {
		if _, err := v.Root.Auth().Token().LookupWithContext(ctx, tok); err == nil {
			t.Fatal("a token is still valid after shutdown")
		}
	}
	if strings.Contains(logs.String(), "CANARY") || strings.Contains(logs.String(), first) {
		t.Fatalf("the sidecar logged a value or a token:\n%s", logs.String())
	}
}

// clusterWithVault starts an API server and a Vault of the test's own, stopped when it ends.
func clusterWithVault(t *testing.T) (*testenv.Env, *testenv.Vault) {
	t.Helper()
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	v, err := env.StartVault(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop() })
	return env, v
}
