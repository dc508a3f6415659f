package awssm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/awssm"
	"github.com/keyway-dev/keyway/providers/providertest"
	"github.com/keyway-dev/keyway/providers/providertest/awsfake"
)

func settings(fake *awsfake.Server) providers.Settings {
	return providers.Settings{
		awssm.SettingRegion:          awsfake.Region,
		awssm.SettingEndpoint:        fake.URL,
		awssm.SettingAccessKeyID:     awsfake.AccessKeyID,
		awssm.SettingSecretAccessKey: awsfake.SecretAccessKey,
		awssm.SettingMaxAttempts:     "4",
	}
}

func openClient(t testing.TB, s providers.Settings, log *slog.Logger) providers.Client {
	t.Helper()
	c, err := awssm.Provider{}.Open(t.Context(), providers.Config{Settings: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func jsonOf(kv map[string]string) string {
	b, _ := json.Marshal(kv)
	return string(b)
}

func TestConformance(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) providertest.Seeded {
			for p, vs := range versions {
				fake.Put(p, jsonOf(vs["1"]))
			}
			for p, kv := range secrets {
				fake.Put(p, jsonOf(kv))
			}
			stage := map[string]string{"1": "AWSPREVIOUS", "99": "NOSUCHSTAGE"}
			return providertest.Seeded{
				Ref:     func(p string) providers.Ref { return providers.Ref{Backend: "awssm", Path: p} },
				Version: func(p, v string) providers.Ref { return providers.Ref{Backend: "awssm", Path: p, Version: stage[v]} },
			}
		},
		Open: func(t *testing.T) providers.Client { return openClient(t, settings(fake), nil) },
	})
}

func TestValuesVersionsAndARNs(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	firstID := fake.Put("plain", "v1-text")
	fake.Put("plain", "v2-text")
	fake.PutBinary("bin", []byte{0, 1, 2, 0xff})
	fake.Put("json", `{"user":"u","port":5432}`)
	c := openClient(t, settings(fake), nil)
	tests := []struct {
		name  string
		ref   providers.Ref
		check func(providers.Secret) bool
	}{
		{"plain string is one value", providers.Ref{Path: "plain"}, func(s providers.Secret) bool { return s.Whole == "v2-text" && s.Data["value"] == "v2-text" }},
		{"AWSPREVIOUS", providers.Ref{Path: "plain", Version: "AWSPREVIOUS"}, func(s providers.Secret) bool { return s.Whole == "v1-text" }},
		{"version id", providers.Ref{Path: "plain", Version: firstID}, func(s providers.Secret) bool { return s.Whole == "v1-text" }},
		{"binary", providers.Ref{Path: "bin"}, func(s providers.Secret) bool { return bytes.Equal(s.Whole.([]byte), []byte{0, 1, 2, 0xff}) }},
		{"JSON keys", providers.Ref{Path: "json"}, func(s providers.Secret) bool { return s.Data["user"] == "u" && s.Data["port"] == float64(5432) }},
		{"by ARN", providers.Ref{Path: fake.ARN("json")}, func(s providers.Secret) bool { return s.Data["user"] == "u" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Fetch(t.Context(), tt.ref)
			if err != nil || !tt.check(s) {
				t.Fatalf("Fetch = %+v, %v", s, err)
			}
		})
	}
}

func TestErrorShapes(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	for _, n := range []string{"denied", "kms", "down", "throttled"} {
		fake.Put(n, "CANARY-"+n)
	}
	fake.SetFault("denied", &awsfake.Fault{ErrorCode: "AccessDeniedException"})
	fake.SetFault("kms", &awsfake.Fault{ErrorCode: "DecryptionFailure"})
	fake.SetFault("down", &awsfake.Fault{ErrorCode: "InternalServiceError"})
	fake.SetFault("throttled", &awsfake.Fault{Throttle: 2})
	c := openClient(t, settings(fake), nil)
	tests := []struct {
		path string
		is   error
	}{
		{"missing", providers.ErrNotFound},
		{"denied", providers.ErrPermissionDenied},
		{"kms", providers.ErrPermissionDenied},
		{"down", providers.ErrUnavailable},
		{"throttled", nil}, // the adaptive retryer rides out two throttles
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := c.Fetch(t.Context(), providers.Ref{Path: tt.path})
			if tt.is == nil {
				if err != nil {
					t.Fatalf("err = %v, want success after retries", err)
				}
				return
			}
			if !errors.Is(err, tt.is) || strings.Contains(err.Error(), "CANARY") {
				t.Fatalf("err = %v, want %v without the value", err, tt.is)
			}
		})
	}
	if n := fake.Calls("GetSecretValue"); n < 5+2 {
		t.Fatalf("GetSecretValue calls = %d; the throttled secret should have been retried", n)
	}
	// A signature made with the wrong secret key is refused the way AWS refuses it.
	bad := settings(fake)
	bad[awssm.SettingSecretAccessKey] = "wrong"
	bad[awssm.SettingMaxAttempts] = "1"
	_, err := openClient(t, bad, nil).Fetch(t.Context(), providers.Ref{Path: "denied"})
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("wrong key: err = %v, want InvalidSignatureException", err)
	}
}

// renderWorkload renders refs references over distinct secrets of the fake.
func renderWorkload(t testing.TB, c *providers.Clients, distinct, refs int) render.Stats {
	t.Helper()
	input := providertest.Workload(refs, distinct, func(i int) string { return fmt.Sprintf("<path:prod/app%d#password>", i) })
	stats, _ := providertest.Render(t, c, "awssm", input)
	return stats
}

func seed(fake *awsfake.Server, distinct int) {
	for i := range distinct {
		fake.Put(fmt.Sprintf("prod/app%d", i), fmt.Sprintf(`{"password":"pw-%d"}`, i))
	}
}

// TestBatching: 500 distinct secrets in one render take ⌈500/20⌉ = 25 BatchGetSecretValue
// calls and no GetSecretValue; with the batch API refused, keyway falls back to one
// GetSecretValue per secret.
func TestBatching(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	seed(fake, 500)
	clients := providers.NewClients(providers.NewRegistry(awssm.Provider{}), map[string]providers.Settings{"awssm": settings(fake)}, nil)
	defer clients.Close()
	stats := renderWorkload(t, clients, 500, 10_000)
	if b, g := fake.Calls("BatchGetSecretValue"), fake.Calls("GetSecretValue"); b != 25 || g != 0 || stats.Fetches != 500 {
		t.Fatalf("batch calls = %d, single calls = %d, fetches = %d; want 25, 0, 500", b, g, stats.Fetches)
	}

	fake.ResetCalls()
	fake.DenyBatch(true)
	var logs bytes.Buffer
	denied := providers.NewClients(providers.NewRegistry(awssm.Provider{}), map[string]providers.Settings{"awssm": settings(fake)}, slog.New(slog.NewTextHandler(&logs, nil)))
	defer denied.Close()
	renderWorkload(t, denied, 500, 10_000)
	if b, g := fake.Calls("BatchGetSecretValue"), fake.Calls("GetSecretValue"); b < 1 || b > 16 || g != 500 {
		t.Fatalf("after denial: batch calls = %d, single calls = %d; want a few refused batches then 500 singles", b, g)
	}
	if !strings.Contains(logs.String(), "BatchGetSecretValue refused") {
		t.Fatalf("no warning about the refused batch API:\n%s", logs.String())
	}
}

// BenchmarkRenderAWS: 10,000 references over 500 secrets with 5 ms per call.
func BenchmarkRenderAWS(b *testing.B) {
	fake := awsfake.New()
	defer fake.Close()
	seed(fake, 500)
	fake.SetLatency(5 * time.Millisecond)
	fake.ResetCalls()
	for b.Loop() {
		clients := providers.NewClients(providers.NewRegistry(awssm.Provider{}), map[string]providers.Settings{"awssm": settings(fake)}, nil)
		renderWorkload(b, clients, 500, 10_000)
		clients.Close()
	}
	b.ReportMetric(float64(fake.Calls("BatchGetSecretValue"))/float64(b.N), "batch-calls/render")
	b.ReportMetric(float64(fake.Calls("GetSecretValue"))/float64(b.N), "get-calls/render")
}

// TestAssumedRoles: role-arn assumes a role with STS AssumeRole (signed with the static
// keys), a web identity token is exchanged with AssumeRoleWithWebIdentity, and role-arn on
// top of it chains; each read is then signed by the session the fake issued. A token the
// identity provider refuses and a role that does not trust the caller fail with STS's codes.
func TestAssumedRoles(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.Put("prod/db", `{"password":"p"}`)
	const reader, chained = "arn:aws:iam::123456789012:role/reader", "arn:aws:iam::123456789012:role/chained"
	fake.Trust(reader, awsfake.AccessKeyID)
	fake.Trust(reader, "system:serviceaccount:shop:app")
	fake.Trust(chained, reader)
	fake.SetWebIdentityVerifier(func(tok string) (string, error) {
		if tok != "good-token" {
			return "", errors.New("bad token")
		}
		return "system:serviceaccount:shop:app", nil
	})
	fetch := func(s providers.Settings) error {
		c, err := awssm.Provider{}.Open(t.Context(), providers.Config{Settings: s})
		if err != nil {
			return err
		}
		defer c.Close()
		sec, err := c.Fetch(t.Context(), providers.Ref{Backend: "awssm", Path: "prod/db"})
		if err == nil && sec.Data["password"] != "p" {
			t.Fatalf("read %v", sec.Data)
		}
		return err
	}
	webIdentity := func(tok string) providers.Settings {
		s := settings(fake)
		delete(s, awssm.SettingAccessKeyID)
		delete(s, awssm.SettingSecretAccessKey)
		s[awssm.SettingWebIdentityToken], s[awssm.SettingWebIdentityRoleARN] = tok, reader
		return s
	}

	s := settings(fake)
	s[awssm.SettingRoleARN] = reader
	if err := fetch(s); err != nil || fake.CallsBy(reader) != 1 || fake.Calls("AssumeRole") != 1 {
		t.Fatalf("static keys + role: err %v, calls by the role %d, AssumeRole %d", err, fake.CallsBy(reader), fake.Calls("AssumeRole"))
	}
	if err := fetch(webIdentity("good-token")); err != nil || fake.CallsBy(reader) != 2 || fake.Calls("AssumeRoleWithWebIdentity") != 1 {
		t.Fatalf("web identity: err %v, calls by the role %d", err, fake.CallsBy(reader))
	}
	s = webIdentity("good-token")
	s[awssm.SettingRoleARN] = chained
	if err := fetch(s); err != nil || fake.CallsBy(chained) != 1 {
		t.Fatalf("web identity + chained role: err %v, calls by the chained role %d", err, fake.CallsBy(chained))
	}
	if err := fetch(webIdentity("forged")); err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") || strings.Contains(err.Error(), "forged") {
		t.Fatalf("a refused token: err = %v", err)
	}
	s = settings(fake)
	s[awssm.SettingRoleARN] = chained // the static keys are not trusted by it
	if err := fetch(s); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("an untrusted role: err = %v", err)
	}
	bad := settings(fake)
	bad[awssm.SettingWebIdentityToken] = "x"
	if err := (awssm.Provider{}).Validate(bad); err == nil {
		t.Fatal("a web identity token without its role was accepted")
	}
}

// TestFind: ListSecrets with a name prefix and tags, across pages; a tag must match key and
// value together.
func TestFind(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	for i := range 130 {
		fake.Put(fmt.Sprintf("team-a/s%03d", i), "v")
	}
	fake.Put("team-b/s000", "v")
	fake.Tag("team-a/s001", "env", "prod")
	fake.Tag("team-a/s002", "env", "dev")
	fake.Tag("team-a/s002", "tier", "prod") // env and prod are both there, not as a pair
	c := openClient(t, settings(fake), nil).(providers.Finder)
	names, err := c.Find(t.Context(), "team-a/", nil, 500)
	if err != nil || len(names) != 130 || names[0] != "team-a/s000" || names[129] != "team-a/s129" {
		t.Fatalf("prefix: %d names, err %v", len(names), err)
	}
	// Two pages; the SDK may repeat one call when a kept-alive connection closes under it
	// (seen once in CI on a loaded machine).
	if n := fake.Calls("ListSecrets"); n < 2 || n > 3 {
		t.Errorf("ListSecrets calls = %d, want 2 pages", n)
	}
	names, err = c.Find(t.Context(), "", map[string]string{"env": "prod"}, 500)
	if err != nil || !slices.Equal(names, []string{"team-a/s001"}) {
		t.Fatalf("tags: %v, err %v", names, err)
	}
	if _, err := c.Find(t.Context(), "team-a/", nil, 100); err == nil || !strings.Contains(err.Error(), "more than 100") {
		t.Fatalf("over the limit: err = %v", err)
	}
}

// TestCurrentVersion: DescribeSecret names the version a read would get without the
// value — the VersionId GetSecretValue returned, a new one after a rotation, the one a
// stage label points at — and a principal without secretsmanager:DescribeSecret gets ""
// (the caller reads the value), asked once.
func TestCurrentVersion(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	first := fake.Put("db", `{"password":"one"}`)
	c := openClient(t, settings(fake), nil).(providers.Versioner)
	read, err := c.Fetch(t.Context(), providers.Ref{Path: "db"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.CurrentVersion(t.Context(), providers.Ref{Path: "db"})
	if err != nil || v != read.Version || v != first {
		t.Fatalf("current version %q, %v; the read was %q, the fake's id %q", v, err, read.Version, first)
	}
	second := fake.Put("db", `{"password":"two"}`)
	if v, err := c.CurrentVersion(t.Context(), providers.Ref{Path: "db"}); err != nil || v != second {
		t.Fatalf("after a rotation: %q, %v; want %q", v, err, second)
	}
	if v, _ := c.CurrentVersion(t.Context(), providers.Ref{Path: "db", Version: "AWSPREVIOUS"}); v != first {
		t.Fatalf("AWSPREVIOUS: %q, want %q", v, first)
	}
	if v, _ := c.CurrentVersion(t.Context(), providers.Ref{Path: "db", Version: first}); v != first {
		t.Fatalf("a pinned id: %q", v)
	}
	if _, err := c.CurrentVersion(t.Context(), providers.Ref{Path: "gone"}); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("a missing secret: %v", err)
	}
	if fake.Calls("GetSecretValue") != 1 {
		t.Fatalf("%d value reads, want the one Fetch", fake.Calls("GetSecretValue"))
	}
	fake.DenyDescribe(true)
	for range 2 {
		if v, err := c.CurrentVersion(t.Context(), providers.Ref{Path: "db"}); v != "" || err != nil {
			t.Fatalf("DescribeSecret denied: %q, %v; want \"\" and no error", v, err)
		}
	}
	if n := fake.Calls("DescribeSecret"); n != 5 {
		t.Fatalf("%d DescribeSecret calls, want 5 (the denied one asked once)", n)
	}
}
