package apply

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/internal/redact"
)

// WaitMapping waits for a kind whose CRD an earlier wave applied to be served.
func (c *Cluster) WaitMapping(ctx context.Context, p *Planned) (*meta.RESTMapping, error) {
	deadline := time.Now().Add(c.Timeout)
	for {
		m, err := c.Mapping(p.Obj.GroupVersionKind())
		if err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %s: the kind is still not served: %v", p.Source, p.Obj.GroupVersionKind(), err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(c.Poll):
		}
	}
}

// WaitHealthy polls the objects of a wave until each is Healthy (or Suspended), one is a
// failed hook, or the timeout passes.
func (c *Cluster) WaitHealthy(ctx context.Context, ps []*Planned, what string) error {
	deadline := time.Now().Add(c.Timeout)
	for {
		pending := Unhealthy(ps)
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return NotHealthyError(what, c.Timeout, pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.Poll):
		}
		if err := c.Refresh(ctx, pending); err != nil {
			return err
		}
	}
}

// Unhealthy lists the objects of ps that are neither Healthy nor Suspended.
func Unhealthy(ps []*Planned) []*Planned {
	var out []*Planned
	for _, p := range ps {
		if p.Health.Status != Healthy && p.Health.Status != Suspended {
			out = append(out, p)
		}
	}
	return out
}

// Refresh reads the live state and health of ps again; a hook that failed is an error.
func (c *Cluster) Refresh(ctx context.Context, ps []*Planned) error {
	for _, p := range ps {
		u, err := c.Resource(p.Mapping, p.Obj.GetNamespace()).Get(ctx, p.Obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			p.Health = Health{Status: Missing}
		case err != nil:
			p.Health = Health{Status: Unknown, Message: redact.APIError(err)}
		default:
			p.Live, p.Health = u, HealthOf(u)
		}
		if p.IsHook() && p.Health.Status == Degraded {
			return fmt.Errorf("hook %s %s failed: %s", p.Key().Kind, p.Obj.GetName(), p.Health.Message)
		}
	}
	return nil
}

// NotHealthyError says that what is still not healthy after limit, naming the first object
// of pending.
func NotHealthyError(what string, limit time.Duration, pending []*Planned) error {
	p := pending[0]
	return fmt.Errorf("%s did not become healthy within %s: %s %s is %s: %s (%d object(s) waiting)", what, limit, p.Key().Kind, p.Obj.GetName(), p.Health.Status, p.Health.Message, len(pending))
}
