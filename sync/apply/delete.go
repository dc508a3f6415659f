package apply

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/keyway-dev/keyway/internal/redact"
)

// Delete deletes the object k names when it still carries owner's mark and keep does not
// hold for it; it returns 1 when it deleted it, and whether it left it on purpose. An object
// another owner took over, or one already gone, is neither.
func (c *Cluster) Delete(ctx context.Context, owner Owner, k Key, policy metav1.DeletionPropagation, keep func(live *unstructured.Unstructured) bool) (int, bool, error) {
	m, err := c.Mapper.RESTMapping(schema.GroupKind{Group: k.Group, Kind: k.Kind})
	if err != nil {
		return 0, false, nil // the kind is gone, and with it the object
	}
	res := c.Resource(m, k.Namespace)
	live, err := res.Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, fmt.Errorf("prune: reading %s: %s", k, redact.APIError(err))
	}
	if live.GetAnnotations()[owner.Annotation] != owner.ID(k) {
		c.Log.Info("not pruning an object another owner took over", "object", k.String())
		return 0, false, nil
	}
	if keep != nil && keep(live) {
		return 0, true, nil
	}
	uid := live.GetUID()
	err = res.Delete(ctx, k.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, true, fmt.Errorf("prune: deleting %s: %s", k, redact.APIError(err))
	}
	c.wrote("delete", nil)
	return 1, false, nil
}

// Create creates a hook's object; one by generateName gets a new name each run. With
// replace, an object of its name left by an earlier run is deleted first (and waited for);
// without, such an object is kept and nothing is created.
func (c *Cluster) Create(ctx context.Context, p *Planned, replace bool) error {
	res := c.Resource(p.Mapping, p.Obj.GetNamespace())
	obj := p.Obj.DeepCopy()
	if obj.GetName() != "" {
		if replace {
			if err := c.deleteAndWait(ctx, p); err != nil {
				return err
			}
		} else if live, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
			p.Live, p.Health = live, HealthOf(live)
			return nil // ran before and kept: Argo CD does not run it again
		}
	}
	out, err := res.Create(ctx, obj, metav1.CreateOptions{FieldManager: c.FieldManager})
	if err != nil {
		return fmt.Errorf("%s: creating hook %s %s: %s", p.Source, p.Key().Kind, obj.GetName(), redact.APIError(err))
	}
	c.wrote("create", out)
	p.Obj.SetName(out.GetName())
	p.Live, p.Health = out, HealthOf(out)
	return nil
}

// Remove deletes p's object (in the background), logging a failure.
func (c *Cluster) Remove(ctx context.Context, p *Planned) {
	bg := metav1.DeletePropagationBackground
	err := c.Resource(p.Mapping, p.Obj.GetNamespace()).Delete(ctx, p.Obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
	if err == nil {
		c.wrote("delete", nil)
	} else if !apierrors.IsNotFound(err) {
		c.Log.Warn("deleting", "kind", p.Key().Kind, "name", p.Obj.GetName(), "error", redact.APIError(err))
	}
}

// deleteAndWait deletes the last run of a hook and waits until it is gone.
func (c *Cluster) deleteAndWait(ctx context.Context, p *Planned) error {
	res := c.Resource(p.Mapping, p.Obj.GetNamespace())
	bg := metav1.DeletePropagationBackground
	err := res.Delete(ctx, p.Obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting the previous hook %s %s: %s", p.Key().Kind, p.Obj.GetName(), redact.APIError(err))
	}
	c.wrote("delete", nil)
	deadline := time.Now().Add(c.Timeout)
	for {
		if _, err := res.Get(ctx, p.Obj.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the previous hook %s %s is still being deleted", p.Key().Kind, p.Obj.GetName())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.Poll):
		}
	}
}
