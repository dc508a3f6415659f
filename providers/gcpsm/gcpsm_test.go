package gcpsm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/gcpsm"
	"github.com/keyway-dev/keyway/providers/providertest"
	"github.com/keyway-dev/keyway/providers/providertest/gcpfake"
)

func startFake(t testing.TB) *gcpfake.Server {
	t.Helper()
	f, err := gcpfake.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func settings(f *gcpfake.Server) providers.Settings {
	return providers.Settings{gcpsm.SettingEndpoint: f.Addr, gcpsm.SettingCAFile: f.CAFile, gcpsm.SettingAccessToken: gcpfake.Token, gcpsm.SettingMaxAttempts: "4"}
}

func openClient(t testing.TB, s providers.Settings) providers.Client {
	t.Helper()
	c, err := gcpsm.Provider{}.Open(t.Context(), providers.Config{Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func jsonOf(kv map[string]string) []byte {
	b, _ := json.Marshal(kv)
	return b
}

func name(p string) string { return "projects/keyway/secrets/" + strings.ReplaceAll(p, "/", "-") }

func TestConformance(t *testing.T) {
	fake := startFake(t)
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) providertest.Seeded {
			for p, vs := range versions {
				fake.Add(name(p), jsonOf(vs["1"]))
			}
			for p, kv := range secrets {
				fake.Add(name(p), jsonOf(kv))
			}
			return providertest.Seeded{
				Ref:     func(p string) providers.Ref { return providers.Ref{Backend: "gcpsm", Path: name(p)} },
				Version: func(p, v string) providers.Ref { return providers.Ref{Backend: "gcpsm", Path: name(p), Version: v} },
			}
		},
		Open: func(t *testing.T) providers.Client { return openClient(t, settings(fake)) },
	})
}

func TestPathsPayloadsAndErrors(t *testing.T) {
	fake := startFake(t)
	fake.Add("projects/p/secrets/plain", []byte("v1"))
	fake.Add("projects/p/secrets/plain", []byte("v2"))
	fake.Disable("projects/p/secrets/plain", 1)
	fake.Add("projects/p/locations/europe-west1/secrets/regional", []byte(`{"k":"eu"}`))
	for _, s := range []string{"denied", "flaky", "down"} {
		fake.Add("projects/p/secrets/"+s, []byte("CANARY-"+s))
	}
	fake.SetFault("projects/p/secrets/denied", &gcpfake.Fault{Code: codes.PermissionDenied})
	fake.SetFault("projects/p/secrets/flaky", &gcpfake.Fault{Unavailable: 2})
	fake.SetFault("projects/p/secrets/down", &gcpfake.Fault{Code: codes.Unavailable})
	c := openClient(t, settings(fake))
	tests := []struct {
		name string
		ref  providers.Ref
		want any
		is   error
		msg  string
	}{
		{"plain payload is one value", providers.Ref{Path: "projects/p/secrets/plain"}, "v2", nil, ""},
		{"version in the path", providers.Ref{Path: "projects/p/secrets/plain/versions/2"}, "v2", nil, ""},
		{"disabled version", providers.Ref{Path: "projects/p/secrets/plain", Version: "1"}, nil, nil, "FailedPrecondition"},
		{"regional", providers.Ref{Path: "projects/p/locations/europe-west1/secrets/regional"}, "eu", nil, ""},
		{"retried UNAVAILABLE", providers.Ref{Path: "projects/p/secrets/flaky"}, "CANARY-flaky", nil, ""},
		{"not found", providers.Ref{Path: "projects/p/secrets/nope"}, nil, providers.ErrNotFound, ""},
		{"permission denied", providers.Ref{Path: "projects/p/secrets/denied"}, nil, providers.ErrPermissionDenied, ""},
		{"unavailable after retries", providers.Ref{Path: "projects/p/secrets/down"}, nil, providers.ErrUnavailable, ""},
		{"malformed path", providers.Ref{Path: "p/secrets/x"}, nil, nil, "want projects/P/secrets/S"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Fetch(t.Context(), tt.ref)
			switch {
			case tt.is != nil || tt.msg != "":
				if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err = %v, want %v %q", err, tt.is, tt.msg)
				}
				if strings.Contains(err.Error(), "CANARY") {
					t.Fatalf("error leaks a value: %v", err)
				}
			case err != nil:
				t.Fatalf("Fetch: %v", err)
			default:
				got := s.Whole
				if got == nil {
					got = s.Data["k"]
				}
				if got != tt.want {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	if n := fake.Calls("AccessSecretVersion"); n < 9+2 {
		t.Fatalf("calls = %d; the flaky secret should have been retried", n)
	}
	// A wrong token is refused with UNAUTHENTICATED.
	bad := settings(fake)
	bad[gcpsm.SettingAccessToken] = "wrong"
	if _, err := openClient(t, bad).Fetch(t.Context(), providers.Ref{Path: "projects/p/secrets/plain"}); !errors.Is(err, providers.ErrPermissionDenied) {
		t.Fatalf("wrong token: err = %v, want ErrPermissionDenied", err)
	}
}

// renderWorkload renders refs references over distinct secrets of the fake.
func renderWorkload(t testing.TB, c *providers.Clients, distinct, refs int) render.Stats {
	t.Helper()
	input := providertest.Workload(refs, distinct, func(i int) string { return fmt.Sprintf("ref+gcpsm://projects/keyway/secrets/app%d#/password", i) })
	stats, _ := providertest.Render(t, c, "", input)
	return stats
}

// TestOneCallPerSecret: 10,000 references over 500 secrets make 500 AccessSecretVersion calls.
func TestOneCallPerSecret(t *testing.T) {
	fake := startFake(t)
	for i := range 500 {
		fake.Add(fmt.Sprintf("projects/keyway/secrets/app%d", i), []byte(fmt.Sprintf(`{"password":"pw-%d"}`, i)))
	}
	clients := providers.NewClients(providers.NewRegistry(gcpsm.Provider{}), map[string]providers.Settings{"gcpsm": settings(fake)}, nil)
	defer clients.Close()
	if stats := renderWorkload(t, clients, 500, 10_000); stats.Fetches != 500 || fake.Calls("AccessSecretVersion") != 500 {
		t.Fatalf("fetches = %d, calls = %d; want 500 each", stats.Fetches, fake.Calls("AccessSecretVersion"))
	}
}

// BenchmarkRenderGCP: 10,000 references over 500 secrets with 5 ms per call.
func BenchmarkRenderGCP(b *testing.B) {
	fake := startFake(b)
	for i := range 500 {
		fake.Add(fmt.Sprintf("projects/keyway/secrets/app%d", i), []byte(fmt.Sprintf(`{"password":"pw-%d"}`, i)))
	}
	fake.SetLatency(5 * time.Millisecond)
	fake.ResetCalls()
	for b.Loop() {
		clients := providers.NewClients(providers.NewRegistry(gcpsm.Provider{}), map[string]providers.Settings{"gcpsm": settings(fake)}, nil)
		renderWorkload(b, clients, 500, 10_000)
		clients.Close()
	}
	b.ReportMetric(float64(fake.Calls("AccessSecretVersion"))/float64(b.N), "calls/render")
}

// TestServiceAccountKey: a key given as a setting (as the syncer reads it from a Secret) is
// exchanged once for a token at the fake's token endpoint — the JWT's signature, issuer,
// audience and scope checked there — and the token serves every read; a key whose token_uri
// names another address is refused before any request; an unknown account is denied. No part
// of a key reaches an error.
func TestServiceAccountKey(t *testing.T) {
	fake := startFake(t)
	fake.Add("projects/p/secrets/db", []byte(`{"password":"s3cret"}`))
	key, err := fake.ServiceAccountKey("reader@keyway-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	set := func(key []byte) providers.Settings {
		return providers.Settings{gcpsm.SettingEndpoint: fake.Addr, gcpsm.SettingCAFile: fake.CAFile,
			gcpsm.SettingCredentialsJSON: string(key), gcpsm.SettingTokenURL: fake.TokenURL}
	}
	c := openClient(t, set(key))
	for range 3 {
		sec, err := c.Fetch(t.Context(), providers.Ref{Backend: "gcpsm", Path: "projects/p/secrets/db"})
		if err != nil || sec.Data["password"] != "s3cret" {
			t.Fatalf("fetch with a key: %v %v", sec.Data, err)
		}
	}
	if n := fake.Calls("token"); n != 1 {
		t.Errorf("token exchanges = %d, want 1 (the token is reused)", n)
	}

	var k map[string]string
	if err := json.Unmarshal(key, &k); err != nil {
		t.Fatal(err)
	}
	noKey := func(t *testing.T, err error) {
		t.Helper()
		for _, part := range []string{k["private_key"][40:80], "BEGIN PRIVATE KEY"} {
			if strings.Contains(err.Error(), part) {
				t.Fatalf("error quotes the key: %v", err)
			}
		}
	}
	// A key pointing its token requests elsewhere.
	k["token_uri"] = "https://metadata.internal/token"
	moved, _ := json.Marshal(k)
	_, err = gcpsm.Provider{}.Open(t.Context(), providers.Config{Settings: set(moved)})
	if err == nil || !strings.Contains(err.Error(), "metadata.internal") || !strings.Contains(err.Error(), "token-url") {
		t.Fatalf("a key with another token_uri: err = %v", err)
	}
	noKey(t, err)
	// A key of an account the token endpoint does not know.
	other, err := fake.ServiceAccountKey("other@keyway-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	var ok map[string]string
	_ = json.Unmarshal(other, &ok)
	k["token_uri"], k["client_email"] = fake.TokenURL, "ghost@keyway-test.iam.gserviceaccount.com"
	k["private_key"] = ok["private_key"]
	ghost, _ := json.Marshal(k)
	_, err = openClient(t, set(ghost)).Fetch(t.Context(), providers.Ref{Backend: "gcpsm", Path: "projects/p/secrets/db"})
	if err == nil || !errors.Is(err, providers.ErrPermissionDenied) && !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("unknown account: err = %v", err)
	}
	noKey(t, err)
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("unknown account: the token endpoint's reason is lost: %v", err)
	}
	// Not a key at all.
	_, err = gcpsm.Provider{}.Open(t.Context(), providers.Config{Settings: set([]byte("-----BEGIN PRIVATE KEY-----\nAAAA"))})
	if err == nil || !strings.Contains(err.Error(), "not a service-account key") {
		t.Fatalf("not JSON: err = %v", err)
	}
	// One way of authenticating at a time.
	both := set(key)
	both[gcpsm.SettingAccessToken] = gcpfake.Token
	if err := (gcpsm.Provider{}).Validate(both); err == nil {
		t.Fatal("a key and an access token together were accepted")
	}
}

// TestLocationCannotChooseTheHost: the location of a reference becomes part of a regional
// endpoint's host name, so anything but a location name is refused before any connection.
func TestLocationCannotChooseTheHost(t *testing.T) {
	fake := startFake(t)
	s := settings(fake)
	delete(s, gcpsm.SettingEndpoint) // the regional endpoint would be built from the location
	c := openClient(t, s)
	for _, loc := range []string{"attacker.example:443?", "attacker.example", "evil.com#", "127.0.0.1:8080", "US-CENTRAL1", "us-central1.", "a%2Fb", "-x", ""} {
		t.Run(loc, func(t *testing.T) {
			_, err := c.Fetch(t.Context(), providers.Ref{Path: "projects/team-a-proj/locations/" + loc + "/secrets/s"})
			if err == nil || !strings.Contains(err.Error(), "location") && !strings.Contains(err.Error(), "want projects/P") {
				t.Fatalf("err = %v, want a refused location", err)
			}
		})
	}
	for _, p := range []string{"projects/p/secrets/s/versions/1?x", "projects/p@evil/secrets/s", "projects/p/secrets/s#x", "projects/p/secrets/../s"} {
		if _, err := c.Fetch(t.Context(), providers.Ref{Path: p}); err == nil {
			t.Errorf("%s: fetched", p)
		}
	}
	if n := fake.Calls("AccessSecretVersion"); n != 0 {
		t.Fatalf("%d calls reached a server", n)
	}
	if _, err := gcpsm.ParseLocation("europe-west4"); err != nil {
		t.Fatal(err)
	}
}

// TestCurrentVersion: GetSecretVersion names the version "latest" is, without the payload
// — the number a read returned, a new one after a rotation, told apart when disabled — and
// credentials without secretmanager.versions.get get "" (the value is read), asked once.
func TestCurrentVersion(t *testing.T) {
	f := startFake(t)
	f.Add("projects/p/secrets/db", []byte(`{"password":"one"}`))
	c := openClient(t, settings(f)).(providers.Versioner)
	ref := providers.Ref{Backend: "gcpsm", Path: "projects/p/secrets/db"}
	read, err := c.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.CurrentVersion(t.Context(), ref); err != nil || v != read.Version || v != "1" {
		t.Fatalf("current %q, %v; read %q", v, err, read.Version)
	}
	f.Add("projects/p/secrets/db", []byte(`{"password":"two"}`))
	if v, _ := c.CurrentVersion(t.Context(), ref); v != "2" {
		t.Fatalf("after a rotation: %q", v)
	}
	if v, _ := c.CurrentVersion(t.Context(), providers.Ref{Backend: "gcpsm", Path: "projects/p/secrets/db/versions/1"}); v != "1" {
		t.Fatalf("pinned: %q", v)
	}
	f.Disable("projects/p/secrets/db", 2)
	if v, _ := c.CurrentVersion(t.Context(), ref); v == "2" {
		t.Fatal("a disabled latest version was not told apart")
	}
	if _, err := c.CurrentVersion(t.Context(), providers.Ref{Backend: "gcpsm", Path: "projects/p/secrets/gone"}); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("a missing secret: %v", err)
	}
	if n := f.Calls("AccessSecretVersion"); n != 1 {
		t.Fatalf("%d payload reads, want the one Fetch", n)
	}
	f.Deny("GetSecretVersion")
	before := f.Calls("GetSecretVersion")
	for range 3 {
		if v, err := c.CurrentVersion(t.Context(), ref); v != "" || err != nil {
			t.Fatalf("versions.get denied: %q, %v", v, err)
		}
	}
	if n := f.Calls("GetSecretVersion") - before; n != 1 {
		t.Fatalf("%d GetSecretVersion calls after the denial, want 1", n)
	}
}
