package providertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

// Canary is planted in every seeded value; no error may contain it.
const Canary = "CANARY-7c1e2b"

// Fixture connects the suite to one backend.
type Fixture struct {
	// Seed stores secrets in the backend before the client is opened and returns the refs
	// the suite uses. path→keys is the current version; versions["path"]["v"] older ones.
	// It returns the Ref for a path (backend-specific spelling) and the Ref of a version.
	Seed func(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) Seeded
	// Open builds a client against the seeded backend.
	Open func(t *testing.T) providers.Client
	// NoVersions is set for backends without versions; the version cases are skipped.
	NoVersions bool
}

// Seeded maps the suite's logical names onto the backend's references.
type Seeded struct {
	Ref     func(path string) providers.Ref
	Version func(path, version string) providers.Ref
}

// Run runs the conformance suite.
func Run(t *testing.T, f Fixture) {
	secrets := map[string]map[string]string{
		"app/db":    {"username": "admin", "password": Canary + "-pw"},
		"app/empty": {"only": Canary + "-only"},
	}
	for i := range 40 {
		secrets[fmt.Sprintf("bulk/%02d", i)] = map[string]string{"n": fmt.Sprint(i), "v": Canary + fmt.Sprint(i)}
	}
	versions := map[string]map[string]map[string]string{
		"app/db": {"1": {"username": "admin", "password": Canary + "-old"}},
	}
	seeded := f.Seed(t, secrets, versions)
	client := f.Open(t)
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	t.Run("found", func(t *testing.T) {
		s, err := client.Fetch(t.Context(), seeded.Ref("app/db"))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if got := reference.Stringify(s.Data["password"]); got != Canary+"-pw" {
			t.Fatalf("password = %q, want the seeded value", got)
		}
		if got := reference.Stringify(s.Data["username"]); got != "admin" {
			t.Fatalf("username = %q, want admin", got)
		}
	})

	t.Run("not found", func(t *testing.T) {
		_, err := client.Fetch(t.Context(), seeded.Ref("app/does-not-exist"))
		if !errors.Is(err, providers.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "does-not-exist") {
			t.Fatalf("err = %q, want it to name the reference", err)
		}
	})

	t.Run("missing key is the caller's business", func(t *testing.T) {
		s, err := client.Fetch(t.Context(), seeded.Ref("app/empty"))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if _, ok := s.Data["password"]; ok {
			t.Fatal("a key that was never seeded is present")
		}
	})

	t.Run("versions", func(t *testing.T) {
		if f.NoVersions {
			t.Skip("backend has no versions")
		}
		s, err := client.Fetch(t.Context(), seeded.Version("app/db", "1"))
		if err != nil {
			t.Fatalf("Fetch version 1: %v", err)
		}
		if got := reference.Stringify(s.Data["password"]); got != Canary+"-old" {
			t.Fatalf("version 1 password = %q, want the old value", got)
		}
		_, err = client.Fetch(t.Context(), seeded.Version("app/db", "99"))
		if !errors.Is(err, providers.ErrNotFound) {
			t.Fatalf("version 99: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 40*3)
		for round := range 3 {
			for i := range 40 {
				wg.Go(func() {
					path := fmt.Sprintf("bulk/%02d", i)
					s, err := client.Fetch(t.Context(), seeded.Ref(path))
					switch {
					case err != nil:
						errs <- fmt.Errorf("round %d %s: %w", round, path, err)
					case reference.Stringify(s.Data["n"]) != fmt.Sprint(i):
						errs <- fmt.Errorf("round %d %s: n = %q, want %d", round, path, reference.Stringify(s.Data["n"]), i)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := client.Fetch(ctx, seeded.Ref("app/db"))
		if err == nil {
			t.Fatal("Fetch with a cancelled context succeeded")
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, providers.ErrUnavailable) {
			t.Fatalf("err = %v, want context.Canceled or ErrUnavailable", err)
		}
	})

	t.Run("no canary in errors", func(t *testing.T) {
		refs := []providers.Ref{seeded.Ref("app/does-not-exist"), seeded.Ref("")}
		if !f.NoVersions {
			refs = append(refs, seeded.Version("app/db", "99"))
		}
		for _, ref := range refs {
			_, err := client.Fetch(t.Context(), ref)
			if err != nil && strings.Contains(err.Error(), Canary) {
				t.Fatalf("error for %s leaks a secret value: %v", ref, err)
			}
		}
	})
}
