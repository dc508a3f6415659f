package apps

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// runHooks runs the hooks of phase wave by wave: each is created (after deleting the last
// run's object with BeforeHookCreation, Argo CD's default), waited on until it completes,
// and deleted afterwards as its hook-delete-policy says.
func (d *Daemon) runHooks(ctx context.Context, a *v1alpha1.Application, hooks []*planned, phase string) error {
	var mine []*item
	byItem := map[*item]*planned{}
	for _, h := range hooks {
		if h.hookIn(phase) {
			mine = append(mine, h.item)
			byItem[h.item] = h
		}
	}
	sortItems(mine)
	for _, wave := range waves(mine) {
		var ps []*planned
		for _, it := range wave {
			p := byItem[it]
			if p.mapping == nil {
				m, err := d.waitMapping(ctx, p)
				if err != nil {
					return err
				}
				p.mapping = m
			}
			if err := d.createHook(ctx, a, p); err != nil {
				return err
			}
			ps = append(ps, p)
		}
		err := d.waitHealthy(ctx, ps, phase+" hooks")
		for _, p := range ps {
			if (err == nil && p.deletePolicy("HookSucceeded")) || (err != nil && p.deletePolicy("HookFailed")) {
				d.deleteHook(ctx, p)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
	}
	return nil
}

// createHook creates a hook object; one by generateName gets a new name each run.
func (d *Daemon) createHook(ctx context.Context, a *v1alpha1.Application, p *planned) error {
	res := d.resource(p.mapping, p.obj.GetNamespace())
	obj := p.obj.DeepCopy()
	if obj.GetName() != "" {
		if p.deletePolicy("BeforeHookCreation") {
			if err := d.deleteAndWait(ctx, p); err != nil {
				return err
			}
		} else if live, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
			p.live, p.health = live, apply.HealthOf(live)
			return nil // ran before and kept: Argo CD does not run it again
		}
	}
	out, err := res.Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("%s: creating hook %s %s: %s", p.source, p.key().Kind, obj.GetName(), redact.APIError(err))
	}
	d.m.writes.WithLabelValues("create").Inc()
	d.noteWrite(out)
	p.obj.SetName(out.GetName())
	p.live, p.health = out, apply.HealthOf(out)
	return nil
}

func (d *Daemon) deleteHook(ctx context.Context, p *planned) {
	bg := metav1.DeletePropagationBackground
	err := d.resource(p.mapping, p.obj.GetNamespace()).Delete(ctx, p.obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
	if err == nil {
		d.m.writes.WithLabelValues("delete").Inc()
	} else if !apierrors.IsNotFound(err) {
		d.log.Warn("deleting hook", "kind", p.key().Kind, "name", p.obj.GetName(), "error", redact.APIError(err))
	}
}

// deleteAndWait deletes the last run of a hook and waits until it is gone.
func (d *Daemon) deleteAndWait(ctx context.Context, p *planned) error {
	res := d.resource(p.mapping, p.obj.GetNamespace())
	bg := metav1.DeletePropagationBackground
	err := res.Delete(ctx, p.obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting the previous hook %s %s: %s", p.key().Kind, p.obj.GetName(), redact.APIError(err))
	}
	d.m.writes.WithLabelValues("delete").Inc()
	deadline := time.Now().Add(d.o.WaveTimeout)
	for {
		if _, err := res.Get(ctx, p.obj.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the previous hook %s %s is still being deleted", p.key().Kind, p.obj.GetName())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.o.PollInterval):
		}
	}
}
