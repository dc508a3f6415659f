package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/keyway-dev/keyway/providers"
)

// mountLookup is one detection of a mount's KV version, shared by every path under it.
type mountLookup struct {
	done    chan struct{}
	mount   string // "secret/"
	version int
	err     error
}

// kvVersion returns the mount of path and its KV version: from the reference (kv-version=),
// from the kv-versions setting, or detected once per mount through sys/internal/ui/mounts.
func (c *Client) kvVersion(ctx context.Context, path, ns, explicit string) (string, int, error) {
	for mount, v := range c.opts.kvByMount {
		if strings.HasPrefix(path+"/", mount) {
			return mount, v, nil
		}
	}
	var forced int
	if explicit != "" {
		v, err := kvVersion(explicit)
		if err != nil {
			return "", 0, fmt.Errorf("vault path %q: kv-version %w", path, err)
		}
		forced = v
	}
	first, _, _ := strings.Cut(path, "/")
	key := ns + "\x00" + first + "/"

	c.mountMu.Lock()
	// A longer mount already known for this path (team/kv/) wins over the first segment.
	for k, l := range c.mounts {
		select {
		case <-l.done: // only finished lookups may be read
		default:
			continue
		}
		if l.mount != "" && strings.HasPrefix(k, ns+"\x00") && strings.HasPrefix(path+"/", l.mount) && len(l.mount) > len(first)+1 {
			c.mountMu.Unlock()
			return c.pick(l, forced)
		}
	}
	l, ok := c.mounts[key]
	if !ok {
		l = &mountLookup{done: make(chan struct{})}
		c.mounts[key] = l
	}
	c.mountMu.Unlock()
	if !ok {
		c.detect(ctx, l, path, ns)
		if l.mount != "" && l.mount != first+"/" {
			c.mountMu.Lock()
			c.mounts[ns+"\x00"+l.mount] = l
			c.mountMu.Unlock()
		}
		close(l.done)
	} else {
		select {
		case <-l.done:
		case <-ctx.Done():
			return "", 0, fmt.Errorf("vault path %q: waiting for the mount lookup: %w", path, ctx.Err())
		}
	}
	if l.mount != "" && !strings.HasPrefix(path+"/", l.mount) {
		// The first segment matched but the mount is deeper and different (a/b/ vs a/c/).
		nl := &mountLookup{done: make(chan struct{})}
		c.detect(ctx, nl, path, ns)
		close(nl.done)
		return c.pick(nl, forced)
	}
	return c.pick(l, forced)
}

func (c *Client) pick(l *mountLookup, forced int) (string, int, error) {
	if l.err != nil {
		return "", 0, l.err
	}
	if forced != 0 {
		return l.mount, forced, nil
	}
	return l.mount, l.version, nil
}

// detect asks Vault which mount holds path and which KV version it runs. When policy
// forbids the lookup, the configured version applies and the first path segment is taken as
// the mount.
func (c *Client) detect(ctx context.Context, l *mountLookup, path, ns string) {
	api, _ := c.current(ns)
	secret, err := api.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	var re *vaultapi.ResponseError
	if err != nil && errors.As(err, &re) && (re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusNotFound) {
		first, _, _ := strings.Cut(path, "/")
		l.mount, l.version = first+"/", c.opts.kvDefault
		c.log.Warn("vault mount lookup not permitted; assuming the configured KV version",
			"path", path, "mount", l.mount, "kv_version", l.version,
			"hint", "allow read on sys/internal/ui/mounts/* or set kv-versions (e.g. secret=2) to skip detection")
		return
	}
	if err != nil {
		l.err = classify(err, fmt.Sprintf("vault mount lookup for %q", path))
		return
	}
	if secret == nil || secret.Data == nil {
		l.err = fmt.Errorf("vault mount lookup for %q returned nothing", path)
		return
	}
	mount, _ := secret.Data["path"].(string)
	typ, _ := secret.Data["type"].(string)
	if mount == "" {
		l.err = fmt.Errorf("%w: no Vault mount holds %q", providers.ErrNotFound, path)
		return
	}
	if typ != "kv" && typ != "generic" {
		l.err = fmt.Errorf("vault mount %q holding %q is a %q engine, not KV", mount, path, typ)
		return
	}
	l.mount, l.version = mount, 1
	if opts, ok := secret.Data["options"].(map[string]any); ok && fmt.Sprint(opts["version"]) == "2" {
		l.version = 2
	}
	c.log.Debug("vault mount detected", "mount", mount, "kv_version", l.version)
}
