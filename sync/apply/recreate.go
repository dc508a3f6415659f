package apply

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/internal/redact"
)

// immutable reports whether the API server refused a change because a field may not change
// (a Job's template, a Service's clusterIP, an immutable ConfigMap or Secret, a
// Deployment's selector): the object can only be replaced.
func immutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Details == nil {
		return strings.Contains(err.Error(), "immutable")
	}
	for _, c := range status.Status().Details.Causes {
		if strings.Contains(c.Message, "immutable") {
			return true
		}
	}
	return strings.Contains(err.Error(), "immutable")
}

// recreate deletes p's live object (only that one: a UID precondition) and waits until it
// is gone, so the apply that follows creates it with the change its immutable fields
// refused.
func (c *Cluster) recreate(ctx context.Context, p *Planned) error {
	res := c.Resource(p.Mapping, p.Obj.GetNamespace())
	uid := p.Live.GetUID()
	bg := metav1.DeletePropagationBackground // the object goes at once; the garbage collector takes its dependents
	err := res.Delete(ctx, p.Obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: recreating %s: %s", p.Source, p.Key(), redact.APIError(err))
	}
	c.wrote("delete", nil)
	deadline := time.Now().Add(c.Timeout)
	for {
		cur, err := res.Get(ctx, p.Obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.GetUID() != uid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: recreating %s: the old object is still being deleted after %s", p.Source, p.Key(), c.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.Poll):
		}
	}
}
