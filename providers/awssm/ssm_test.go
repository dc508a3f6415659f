package awssm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/awssm"
	"github.com/keyway-dev/keyway/providers/providertest"
	"github.com/keyway-dev/keyway/providers/providertest/awsfake"
)

func openSSM(t testing.TB, fake *awsfake.Server) providers.Client {
	t.Helper()
	c, err := awssm.SSMProvider{}.Open(t.Context(), providers.Config{Settings: settings(fake)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSSMConformance(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) providertest.Seeded {
			for p, vs := range versions {
				fake.PutParameter("/"+p, jsonOf(vs["1"]), true)
			}
			for p, kv := range secrets {
				fake.PutParameter("/"+p, jsonOf(kv), true)
			}
			return providertest.Seeded{
				Ref:     func(p string) providers.Ref { return providers.Ref{Backend: "awsssm", Path: "/" + p} },
				Version: func(p, v string) providers.Ref { return providers.Ref{Backend: "awsssm", Path: "/" + p, Version: v} },
			}
		},
		Open: func(t *testing.T) providers.Client { return openSSM(t, fake) },
	})
}

// TestSSMBatching: 95 distinct parameters take ⌈95/10⌉ = 10 GetParameters calls, SecureString
// values arrive decrypted, plain values are whole.
func TestSSMBatching(t *testing.T) {
	fake := awsfake.New()
	defer fake.Close()
	var b strings.Builder
	b.WriteString("kind: ConfigMap\ndata:\n")
	for i := range 95 {
		fake.PutParameter(fmt.Sprintf("/prod/p%d", i), fmt.Sprintf("v%d", i), i%2 == 0)
		fmt.Fprintf(&b, "  k%d: ref+awsssm:///prod/p%d\n", i, i)
	}
	clients := providers.NewClients(providers.NewRegistry(awssm.SSMProvider{}), map[string]providers.Settings{"awsssm": settings(fake)}, nil)
	defer clients.Close()
	docs, err := manifest.Read(strings.NewReader(b.String()), "s.yaml", manifest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := render.New(clients, render.Options{}).Render(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls("GetParameters"); n != 10 {
		t.Fatalf("GetParameters calls = %d, want 10", n)
	}
	if got := docs[0].Root.Content[3].Content[1].Value; got != "v0" {
		t.Fatalf("k0 = %q, want the decrypted v0", got)
	}
	_, err = openSSM(t, fake).Fetch(t.Context(), providers.Ref{Path: "/prod/p1", Version: "7"})
	if !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("missing version: err = %v, want ErrNotFound", err)
	}
}
