package apps

import (
	"context"
	"fmt"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// runHooks runs the hooks of phase wave by wave: each is created (after deleting the last
// run's object with BeforeHookCreation, Argo CD's default), waited on until it completes,
// and deleted afterwards as its hook-delete-policy says.
func (d *Daemon) runHooks(ctx context.Context, a *v1alpha1.Application, hooks []*apply.Planned, phase string) error {
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
		var ps []*apply.Planned
		for _, it := range wave {
			p := byItem[it]
			if p.Mapping == nil {
				m, err := d.eng.WaitMapping(ctx, p)
				if err != nil {
					return err
				}
				p.Mapping = m
			}
			if err := d.eng.Create(ctx, p, deletePolicy(p.Object, "BeforeHookCreation")); err != nil {
				return err
			}
			ps = append(ps, p)
		}
		err := d.waitHealthy(ctx, ps, phase+" hooks")
		for _, p := range ps {
			if (err == nil && deletePolicy(p.Object, "HookSucceeded")) || (err != nil && deletePolicy(p.Object, "HookFailed")) {
				d.eng.Remove(ctx, p)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
	}
	return nil
}
