package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

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
	if params, _ := url.ParseQuery(ref.Params); params.Get(ParamMetadata) != "" {
		return "", nil // metadata changes keep the version: compare what is read
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

// ParamMetadata in a reference's parameters asks for the secret's metadata instead of its
// data: "custom" is KV v2's custom_metadata (what ESO's metadataPolicy: Fetch reads).
const ParamMetadata = "metadata"

// customMetadata reads a KV v2 secret's custom_metadata as the secret's data (no values of
// the secret are read). Version is the current version.
func (c *Client) customMetadata(ctx context.Context, t kvTarget) (providers.Secret, error) {
	if t.kv == 1 {
		return providers.Secret{}, fmt.Errorf("vault path %q: KV v1 mount %q keeps no metadata", t.path, t.mount)
	}
	secret, err := c.read(ctx, t.metadataPath, t.ns, nil)
	if err != nil {
		return providers.Secret{}, err
	}
	if secret == nil || secret.Data == nil {
		return providers.Secret{}, fmt.Errorf("%w: vault path %q", providers.ErrNotFound, t.path)
	}
	custom, _ := secret.Data["custom_metadata"].(map[string]any)
	out := providers.Secret{Data: map[string]any{}, Version: fmt.Sprint(secret.Data["current_version"])}
	for k, v := range custom {
		out.Data[k] = v
	}
	if len(out.Data) == 0 {
		out.Whole = "" // no metadata: an empty value, as ESO gives
	}
	return out, nil
}
