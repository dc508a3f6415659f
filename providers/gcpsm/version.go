package gcpsm

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyway-dev/keyway/providers"
)

var _ providers.Versioner = (*Client)(nil)

// CurrentVersion implements providers.Versioner with GetSecretVersion, which resolves
// "latest" to its number and carries no payload: comparable with the version Fetch read.
// A reference pinned to a number is its own answer. The secretAccessor role may access
// versions but not get them (that is secretmanager.versions.get, in the viewer role): a
// refusal answers "" from then on, and the caller reads the value.
func (c *Client) CurrentVersion(ctx context.Context, ref providers.Ref) (string, error) {
	name, location, err := parse(ref)
	if err != nil {
		return "", err
	}
	if v := name[strings.LastIndex(name, "/")+1:]; v != "latest" {
		return v, nil
	}
	c.mu.Lock()
	denied := c.getDenied
	c.mu.Unlock()
	if denied {
		return "", nil
	}
	cl, err := c.client(ctx, location)
	if err != nil {
		return "", err
	}
	sv, err := cl.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name})
	if status.Code(err) == codes.PermissionDenied {
		c.mu.Lock()
		c.getDenied = true
		c.mu.Unlock()
		c.log.Info("secret manager: the credentials may not get secret versions (secretmanager.versions.get); rotation checks read values instead")
		return "", nil
	}
	if err != nil {
		return "", classify(err, fmt.Sprintf("secret %q", name))
	}
	version := sv.GetName()[strings.LastIndex(sv.GetName(), "/")+1:]
	if sv.GetState() != secretmanagerpb.SecretVersion_ENABLED {
		// Fetch fails on it: say it differs, so the caller reads again and sees why.
		version += " (" + sv.GetState().String() + ")"
	}
	return version, nil
}
