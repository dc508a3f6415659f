package vault

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

// List implements providers.Lister: the secrets under prefix ("secret/app" in a KV v2 mount
// lists secret/metadata/app), folders walked, full paths returned sorted.
func (c *Client) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	prefix = strings.Trim(prefix, "/")
	if err := reference.CheckPath(prefix); err != nil {
		return nil, fmt.Errorf("%w: vault path %q is not canonical: %v", providers.ErrPermissionDenied, prefix, err)
	}
	ns := c.opts.namespace
	mount, version, err := c.kvVersion(ctx, prefix, ns, "")
	if err != nil {
		return nil, err
	}
	mount = strings.TrimSuffix(mount, "/")
	rest := strings.Trim(strings.TrimPrefix(prefix, mount), "/")
	var out []string
	queue := []string{rest}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		api := mount + "/" + dir
		if version == 2 {
			api = mount + "/metadata/" + dir
		}
		keys, err := c.list(ctx, strings.TrimSuffix(api, "/"), ns)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			full := strings.Trim(dir+"/"+k, "/")
			if strings.HasSuffix(k, "/") {
				queue = append(queue, full)
				continue
			}
			out = append(out, mount+"/"+full)
			if len(out) > limit {
				return nil, fmt.Errorf("vault path %q holds more than %d secrets", prefix, limit)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func (c *Client) list(ctx context.Context, path, ns string) ([]string, error) {
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("vault list %q: %w: %w", path, providers.ErrUnavailable, ctx.Err())
	}
	api, _ := c.current(ns)
	secret, err := api.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, classify(err, fmt.Sprintf("vault list %q", path))
	}
	if secret == nil || secret.Data == nil {
		return nil, nil // nothing there
	}
	raw, _ := secret.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	return keys, nil
}
