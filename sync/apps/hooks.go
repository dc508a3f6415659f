package apps

import (
	"context"
	"fmt"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// runHooks runs the hooks of phase wave by wave: each is created (after deleting the last
// run's object with BeforeHookCreation, Argo CD's default), waited on until it completes,
// and deleted afterwards as its hook-delete-policy says. The operation, when there is one,
// keeps which hook waves were created and which completed, so a run that comes back
// neither starts them over nor runs them twice; with noWait (Run's polls) a hook wave that
// has not completed yet returns a *waiting instead of holding the worker.
func (d *Daemon) runHooks(ctx context.Context, a *v1alpha1.Application, hooks []*apply.Planned, phase string, op *operation, noWait bool) error {
	var mine []*apply.Object
	byItem := map[*apply.Object]*apply.Planned{}
	for _, h := range hooks {
		if h.HookIn(phase) {
			mine = append(mine, h.Object)
			byItem[h.Object] = h
		}
	}
	apply.Sort(mine)
	for _, wave := range apply.Waves(mine) {
		id := hookWave(phase, wave[0].Wave)
		if op != nil && op.hooksDone[id] {
			continue
		}
		var ps []*apply.Planned
		for _, it := range wave {
			p := byItem[it]
			if err := d.mapped(ctx, p); err != nil {
				return err
			}
			if op == nil || !op.hooksCreated[id] {
				if err := d.eng.Create(ctx, p, deletePolicy(p.Object, "BeforeHookCreation")); err != nil {
					return err
				}
			}
			ps = append(ps, p)
		}
		at := fmt.Sprintf("%s hooks (wave %d)", phase, wave[0].Wave)
		if op != nil {
			op.hooksCreated[id] = true
		}
		var err error
		if noWait {
			err = d.refreshHooks(ctx, ps)
			if pending := apply.Unhealthy(ps); err == nil && len(pending) > 0 {
				return waitingFor(at, wave[0].Wave, pending)
			}
		} else {
			err = d.waitHealthy(ctx, ps, at)
		}
		d.hooksEnded(ctx, ps, err)
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
		if op != nil {
			op.hooksDone[id] = true
		}
	}
	return nil
}

// mapped gives p its REST mapping, waiting for a CRD applied earlier in the sync.
func (d *Daemon) mapped(ctx context.Context, p *apply.Planned) error {
	if p.Mapping != nil {
		return nil
	}
	m, err := d.eng.WaitMapping(ctx, p)
	if err != nil {
		return err
	}
	p.Mapping = m
	return nil
}

// refreshHooks reads the hooks' live state and health; a hook that failed is an error.
func (d *Daemon) refreshHooks(ctx context.Context, hooks []*apply.Planned) error {
	for _, h := range hooks {
		if err := d.mapped(ctx, h); err != nil {
			return err
		}
	}
	return d.eng.Refresh(ctx, hooks)
}

// hooksEnded deletes the hooks of a wave that ended — with err or without — as their
// hook-delete-policy says (HookSucceeded, HookFailed).
func (d *Daemon) hooksEnded(ctx context.Context, hooks []*apply.Planned, err error) {
	for _, p := range hooks {
		if (err == nil && deletePolicy(p.Object, "HookSucceeded")) || (err != nil && deletePolicy(p.Object, "HookFailed")) {
			d.eng.Remove(ctx, p)
		}
	}
}
