package externalsecrets

import (
	"strings"
	"testing"

	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// TestStoreProviders: a store names exactly one provider; two are refused by name rather
// than resolved in an order of keyway's, none is refused, the fake one resolves.
func TestStoreProviders(t *testing.T) {
	s := &Syncer{}
	two := &esv1.SecretStore{Spec: esv1.SecretStoreSpec{Provider: &esv1.SecretStoreProvider{Vault: &esv1.VaultProvider{}, Fake: &esv1.FakeProvider{}}}}
	if _, err := s.resolve(t.Context(), "SecretStore x", two); err == nil || !strings.Contains(err.Error(), "names vault and fake: a store has one provider") {
		t.Fatalf("two providers: %v", err)
	}
	none := &esv1.SecretStore{Spec: esv1.SecretStoreSpec{Provider: &esv1.SecretStoreProvider{}}}
	if _, err := s.resolve(t.Context(), "SecretStore x", none); err == nil || !strings.Contains(err.Error(), "only the vault, aws, gcpsm and fake providers") {
		t.Fatalf("no provider: %v", err)
	}
	fake := &esv1.SecretStore{Spec: esv1.SecretStoreSpec{Provider: &esv1.SecretStoreProvider{Fake: &esv1.FakeProvider{Data: []esv1.FakeProviderData{{Key: "k", Value: "v"}}}}}}
	if st, err := s.resolve(t.Context(), "SecretStore x", fake); err != nil || st.backend != "fake" || st.fake["k\x00"] != "v" {
		t.Fatalf("fake: %+v %v", st, err)
	}
}
