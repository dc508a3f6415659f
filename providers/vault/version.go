package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyway-dev/keyway/providers"
)

var _ providers.Versioner = (*Client)(nil)

// CurrentVersion implements providers.Versioner: KV v2's metadata endpoint names the
// current version without sending the value. A pinned version is its own answer. KV v1
// keeps no versions, and a policy may grant data/ but not metadata/: then it answers ""
// and the caller reads the value (a mount whose metadata was refused once is not asked
// again, so a narrow policy costs no extra requests).
func (c *Client) CurrentVersion(ctx context.Context, ref providers.Ref) (string, error) {
	t, release, err := c.target(ctx, ref)
	if err != nil {
		return "", err
	}
	defer release()
	if t.kv == 1 {
		return "", nil
	}
	if ref.Version != "" {
		return ref.Version, nil
	}
	denied := t.ns + "\x00" + t.mount
	if _, ok := c.metadataDenied.Load(denied); ok {
		return "", nil
	}
	secret, err := c.read(ctx, t.metadataPath, t.ns, nil)
	if errors.Is(err, providers.ErrPermissionDenied) {
		c.metadataDenied.Store(denied, true)
		c.log.Info("vault: the token may not read KV v2 metadata on this mount; rotation checks read values instead", "mount", t.mount)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if secret == nil || secret.Data == nil {
		return "", fmt.Errorf("%w: vault path %q", providers.ErrNotFound, t.path)
	}
	current := fmt.Sprint(secret.Data["current_version"])
	// A current version that was deleted or destroyed reads as not found: say it differs
	// from the version that was read, so the caller reads again and sees that.
	versions, _ := secret.Data["versions"].(map[string]any)
	if v, _ := versions[current].(map[string]any); v != nil {
		if destroyed, _ := v["destroyed"].(bool); destroyed || nonEmpty(v["deletion_time"]) {
			return current + " (deleted)", nil
		}
	}
	return current, nil
}

func nonEmpty(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case json.Number:
		return v != ""
	}
	return false
}

var _ providers.Checker = (*Client)(nil)

// Check implements providers.Checker: the token is looked up (auth/token/lookup-self, which
// every token may call), so a store with a bogus or expired token is refused when it is
// validated, not at its first read. A client that logged in has checked its credentials
// already.
func (c *Client) Check(ctx context.Context) error {
	api, _ := c.current(c.opts.namespace)
	if _, err := api.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return classify(err, "vault token lookup")
	}
	return nil
}
