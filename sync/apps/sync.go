package apps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// Trigger is why a sync runs.
type Trigger int

const (
	// Explicit syncs whatever differs, automated or not (`keyway daemon --once`).
	Explicit Trigger = iota
	// DiffOnly writes nothing: it reports what an explicit sync would change (`keyway
	// diff`), dry runs and reads only.
	DiffOnly
	// Poll syncs automated applications whose revision moved, and self-healing ones that
	// drifted; it reports drift of the others.
	Poll
)

// SyncAll syncs every root application and its children, in order, and returns the
// statuses of all.
func (d *Daemon) SyncAll(ctx context.Context, t Trigger) []Status {
	for _, a := range d.roots() {
		if d.shard != nil && !d.shard.owns(a.Name) {
			continue
		}
		d.syncRetrying(ctx, a, "", true, t, map[string]bool{})
	}
	d.mu.Lock()
	sets := make([]*v1alpha1.ApplicationSet, 0, len(d.sets))
	for _, s := range d.sets {
		sets = append(sets, s)
	}
	d.mu.Unlock()
	slices.SortFunc(sets, func(a, b *v1alpha1.ApplicationSet) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range sets {
		d.syncSet(ctx, s, t)
	}
	return d.Statuses()
}

// SyncOne syncs the named application (and its children) again.
func (d *Daemon) SyncOne(ctx context.Context, name string, t Trigger) (*Status, bool) {
	d.mu.Lock()
	e, ok := d.apps[name]
	d.mu.Unlock()
	if !ok {
		return nil, false
	}
	if d.shard != nil && !d.shard.owns(d.topOf(name)) {
		return nil, false // another replica's
	}
	return d.syncRetrying(ctx, e.app, e.parent, e.root, t, map[string]bool{}), true
}

// syncApp runs one sync of a and returns its status. seen holds the applications above
// it in the tree (the cycle guard).
func (d *Daemon) syncApp(ctx context.Context, a *v1alpha1.Application, parent string, root bool, t Trigger, seen map[string]bool) *Status {
	// Objects go to the destination's cluster: continue on that view of the daemon.
	tgt, terr := d.hub.target(ctx, a.Spec.Destination)
	if terr == nil && tgt != d {
		return tgt.syncApp(ctx, a, parent, root, t, seen)
	}
	defer d.lockApp(a.Name)()
	s := &syncRun{d: d, a: a, t: t, seen: with(seen, a.Name), start: time.Now(),
		st: &Status{Name: a.Name, Parent: parent, Cluster: destLabel(a.Spec.Destination), Sync: Unknown, Health: apply.Unknown}}
	d.mu.Lock()
	if prev := d.status[a.Name]; prev != nil {
		s.st.Reason = prev.Reason // why it last applied, until it applies again
	}
	d.mu.Unlock()
	if terr != nil {
		s.st.Health = apply.Unknown
		return s.fail(terr)
	}
	for _, step := range []func(context.Context) error{
		func(ctx context.Context) error { return s.fetch(ctx, root) },
		s.render, s.plan,
	} {
		if err := step(ctx); err != nil {
			return s.fail(err)
		}
	}
	s.compare(ctx)
	if st := s.guard(); st != nil {
		return st
	}
	if t == DiffOnly {
		return s.diff(ctx)
	}
	// Child applications are registered before the sync so they can be synced in their wave.
	s.registerChildren()
	if !s.needed || !s.allowed {
		return s.report(ctx)
	}
	return s.operate(ctx)
}

// topOf is the root application (or ApplicationSet) a known application descends from.
func (d *Daemon) topOf(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range 100 {
		e, ok := d.apps[name]
		if !ok || e.root || e.parent == "" {
			return name
		}
		name = e.parent
	}
	return name
}

// writeInventoryAs stores the inventory with entries and children, and the revision.
func (d *Daemon) writeInventoryAs(ctx context.Context, a *v1alpha1.Application, inv *inventory, entries []apply.Key, children []string) error {
	inv.Entries, inv.Children = entries, children
	inv.Finalizer = slices.Contains(a.Finalizers, v1alpha1.ResourcesFinalizer)
	inv.Cluster = d.cluster
	d.mu.Lock()
	if e, ok := d.apps[a.Name]; ok {
		inv.Parent = e.parent
	}
	d.mu.Unlock()
	before := inv.exists && inv.data != nil
	data := inv.data
	err := d.writeInventory(ctx, a.Name, inv)
	if err == nil && (!before || !maps.Equal(data, inv.data)) {
		d.m.writes.WithLabelValues("inventory").Inc()
	}
	return err
}

func keys(ps []*apply.Planned) []apply.Key {
	out := make([]apply.Key, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Key())
	}
	return out
}

func syncHooks(hooks []*apply.Planned) []*apply.Planned {
	var out []*apply.Planned
	for _, h := range hooks {
		if h.HookIn(PhaseSync) {
			out = append(out, h)
		}
	}
	return out
}

func orRoot(e *appEntry) string {
	if e.root {
		return "the daemon's --app list"
	}
	return "application " + e.parent
}

func with(seen map[string]bool, add string) map[string]bool {
	out := make(map[string]bool, len(seen)+1)
	for k := range seen {
		out[k] = true
	}
	out[add] = true
	return out
}

// walkWaves goes through the waves in order. When operate is set it applies what changed in
// each (and creates its Sync hooks) and waits for the wave to be healthy before the next —
// or, with applyNoWait, returns a *waiting at the first wave that is not healthy yet, op
// remembering which hook waves it created and completed; child applications sync in
// their wave either way. The status collects counts, resources and the worst health.
func (d *Daemon) walkWaves(ctx context.Context, a *v1alpha1.Application, ps []*apply.Planned, children []*v1alpha1.Application, mode walkMode, op *operation, t Trigger, seen map[string]bool, st *Status) error {
	operate := mode != readOnly
	all := make([]*apply.Object, 0, len(ps)+len(children))
	byItem := map[*apply.Object]*apply.Planned{}
	for _, p := range ps {
		all = append(all, p.Object)
		byItem[p.Object] = p
	}
	childOf := map[*apply.Object]*v1alpha1.Application{}
	for _, c := range children {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(v1alpha1.APIVersion)
		u.SetKind(v1alpha1.Kind)
		u.SetName(c.Name)
		u.SetAnnotations(c.Annotations)
		it, err := newItem(u, "application "+c.Name)
		if err != nil {
			return err
		}
		all = append(all, it)
		childOf[it] = c
	}
	apply.Promote(all)
	apply.Sort(all)
	health := apply.Healthy
	worst := func(h apply.Health, what string) {
		if h.Status.Worse(health) {
			health = h.Status
			if h.Message != "" {
				st.Message = what + ": " + h.Message
			} else {
				st.Message = what + " is " + string(h.Status)
			}
		}
	}
	defer func() { st.Health = health }()
	for i, wave := range apply.Waves(all) {
		if operate && i > 0 && d.stopping.Err() != nil {
			return fmt.Errorf("stopped before wave %d: the daemon is shutting down; the next start continues the sync", wave[0].Wave)
		}
		var waitFor, hooks []*apply.Planned
		hookID := hookWave(PhaseSync, wave[0].Wave)
		for _, it := range wave {
			if c, ok := childOf[it]; ok {
				// As Argo CD since 1.8: a child application's health is its own. The parent
				// neither takes it into its health nor waits for it, and a child that fails
				// or waits does not hold back the parent's next wave (one degraded child
				// never blocks the structure of the tree).
				d.syncRetrying(ctx, c, a.Name, false, t, seen)
				continue
			}
			p := byItem[it]
			if p.IsHook() {
				if op != nil && op.hooksDone[hookID] {
					continue // ran in this operation already
				}
				hooks = append(hooks, p)
			}
			switch {
			case operate && p.IsHook() && op != nil && op.hooksCreated[hookID]:
				// Created by an earlier run of this operation: looked at, not started over.
			case operate && (p.Action != apply.Unchanged || p.IsHook()):
				if err := d.applyOne(ctx, a, p); err != nil {
					return err
				}
				if !p.IsHook() {
					st.Applied++
				}
			case !p.IsHook() && operate:
				st.Unchanged++
			}
			waitFor = append(waitFor, p)
		}
		at := fmt.Sprintf("wave %d", wave[0].Wave)
		if operate && op != nil && len(hooks) > 0 {
			op.hooksCreated[hookID] = true
		}
		if mode == applyNoWait {
			err := d.refreshHooks(ctx, hooks)
			if pending := apply.Unhealthy(waitFor); err == nil && len(pending) > 0 {
				for _, p := range waitFor {
					st.Resources = append(st.Resources, resourceStatus(p))
				}
				return waitingFor(at, wave[0].Wave, pending)
			}
			d.hooksEnded(ctx, hooks, err)
			if err != nil {
				return err
			}
		} else if operate {
			err := d.waitHealthy(ctx, waitFor, at)
			d.hooksEnded(ctx, hooks, err)
			if err != nil {
				for _, p := range waitFor {
					st.Resources = append(st.Resources, resourceStatus(p))
				}
				return err
			}
		}
		if operate && op != nil && len(hooks) > 0 {
			op.hooksDone[hookID] = true
		}
		for _, p := range waitFor {
			if p.IsHook() {
				continue
			}
			rs := resourceStatus(p)
			if !operate && p.Action != apply.Unchanged {
				rs.Status = OutOfSync
			}
			st.Resources = append(st.Resources, rs)
			worst(p.Health, p.Key().Kind+" "+p.Key().Namespace+"/"+p.Key().Name)
		}
	}
	return nil
}

// walkMode is how walkWaves goes through the waves.
type walkMode int

const (
	readOnly    walkMode = iota // health only: nothing applied
	applyWait                   // apply, and wait for each wave's health
	applyNoWait                 // apply, and return a *waiting at a wave that is not healthy yet
)

// waiting says a sync stopped at a wave (or a hook wave) that is not healthy yet, to be
// continued.
type waiting struct {
	at   string // "wave 2", "PreSync hooks (wave 0)"
	wave int
	what string
}

func (w *waiting) Error() string {
	return fmt.Sprintf("waiting for %s to be healthy: %s", w.at, w.what)
}

func waitingFor(at string, wave int, pending []*apply.Planned) *waiting {
	p := pending[0]
	what := fmt.Sprintf("%s %s is %s", p.Key().Kind, p.Obj.GetName(), p.Health.Status)
	if p.Health.Message != "" {
		what += ": " + p.Health.Message
	}
	if len(pending) > 1 {
		what += fmt.Sprintf(" (%d waiting)", len(pending))
	}
	return &waiting{at: at, wave: wave, what: what}
}

// waitHealthy waits for ps to be healthy, or until the daemon is asked to stop: then the
// sync ends at this boundary (the next start continues it) instead of holding the shutdown
// for up to --wave-timeout.
func (d *Daemon) waitHealthy(ctx context.Context, ps []*apply.Planned, what string) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.stopping, cancel)
	defer stop()
	err := d.eng.WaitHealthy(wctx, ps, what)
	if err != nil && d.stopping.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("stopped while waiting for %s to be healthy: the daemon is shutting down; the next start continues the sync", what)
	}
	return err
}

func resourceStatus(p *apply.Planned) ResourceStatus {
	k := p.Key()
	return ResourceStatus{Group: k.Group, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Status: Synced, Health: p.Health.Status, Message: p.Health.Message}
}

// applyOne applies a resource (or creates a Sync hook) and records its health.
func (d *Daemon) applyOne(ctx context.Context, a *v1alpha1.Application, p *apply.Planned) error {
	if p.Mapping == nil {
		m, err := d.eng.WaitMapping(ctx, p)
		if err != nil {
			return err
		}
		p.Mapping = m
	}
	if p.IsHook() {
		return d.eng.Create(ctx, p, deletePolicy(p.Object, "BeforeHookCreation"))
	}
	out, err := d.eng.Apply(ctx, p, false)
	if err != nil {
		return fmt.Errorf("%s: applying %s: %s", p.Source, p.Key(), redact.APIError(err))
	}
	p.Live = out
	p.Health = apply.HealthOf(out)
	return nil
}

// noteWrite remembers a resourceVersion this daemon wrote, so its watch echo does not
// count as drift.
func (d *state) noteWrite(u *unstructured.Unstructured) {
	if u == nil {
		return
	}
	d.mu.Lock()
	if len(d.written) > 100_000 {
		d.written = map[string]bool{}
	}
	d.written[string(u.GetUID())+"/"+u.GetResourceVersion()] = true
	d.mu.Unlock()
}
