package apps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	s := &syncRun{d: d, a: a, t: t, seen: with(seen, a.Name), start: time.Now(),
		st: &Status{Name: a.Name, Parent: parent, Cluster: destLabel(a.Spec.Destination), Sync: Unknown, Health: apply.Unknown}}
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
func (d *Daemon) writeInventoryAs(ctx context.Context, a *v1alpha1.Application, inv *inventory, entries []objKey, children []string) error {
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

func keys(ps []*planned) []objKey {
	out := make([]objKey, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.key())
	}
	return out
}

func syncHooks(hooks []*planned) []*planned {
	var out []*planned
	for _, h := range hooks {
		if h.hookIn(PhaseSync) {
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
// each and waits for the wave to be healthy before the next; child applications sync in
// their wave either way. The status collects counts, resources and the worst health.
func (d *Daemon) walkWaves(ctx context.Context, a *v1alpha1.Application, ps []*planned, children []*v1alpha1.Application, operate bool, t Trigger, seen map[string]bool, st *Status) error {
	all := make([]*item, 0, len(ps)+len(children))
	byItem := map[*item]*planned{}
	for _, p := range ps {
		all = append(all, p.item)
		byItem[p.item] = p
	}
	childOf := map[*item]*v1alpha1.Application{}
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
	promote(all)
	sortItems(all)
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
	for i, wave := range waves(all) {
		if operate && i > 0 && d.stopping.Err() != nil {
			return fmt.Errorf("stopped before wave %d: the daemon is shutting down; the next start continues the sync", wave[0].wave)
		}
		var waitFor []*planned
		var childFailed []string
		for _, it := range wave {
			if c, ok := childOf[it]; ok {
				cs := d.syncRetrying(ctx, c, a.Name, false, t, seen)
				worst(apply.Health{Status: cs.Health, Message: cs.Message}, "application "+c.Name)
				if operate && cs.Health != apply.Healthy && cs.Health != apply.Suspended {
					// The wave's other applications still sync (one unreachable cluster
					// must not hold back the rest); the next wave waits.
					childFailed = append(childFailed, fmt.Sprintf("application %s is %s", c.Name, cs.Health))
				}
				continue
			}
			p := byItem[it]
			if operate && (p.action != unchanged || p.isHook()) {
				if err := d.applyOne(ctx, a, p); err != nil {
					return err
				}
				if !p.isHook() {
					st.Applied++
				}
			} else if !p.isHook() && operate {
				st.Unchanged++
			}
			waitFor = append(waitFor, p)
		}
		if len(childFailed) > 0 {
			return fmt.Errorf("wave %d: %s", wave[0].wave, strings.Join(childFailed, "; "))
		}
		if operate {
			if err := d.waitHealthy(ctx, waitFor, fmt.Sprintf("wave %d", wave[0].wave)); err != nil {
				for _, p := range waitFor {
					st.Resources = append(st.Resources, resourceStatus(p))
				}
				return err
			}
		}
		for _, p := range waitFor {
			if p.isHook() {
				continue
			}
			rs := resourceStatus(p)
			if !operate && p.action != unchanged {
				rs.Status = OutOfSync
			}
			st.Resources = append(st.Resources, rs)
			worst(p.health, p.key().Kind+" "+p.key().Namespace+"/"+p.key().Name)
		}
	}
	return nil
}

func resourceStatus(p *planned) ResourceStatus {
	k := p.key()
	return ResourceStatus{Group: k.Group, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Status: Synced, Health: p.health.Status, Message: p.health.Message}
}

// applyOne applies a resource (or creates a Sync hook) and records its health.
func (d *Daemon) applyOne(ctx context.Context, a *v1alpha1.Application, p *planned) error {
	if p.mapping == nil {
		m, err := d.waitMapping(ctx, p)
		if err != nil {
			return err
		}
		p.mapping = m
	}
	if p.isHook() {
		return d.createHook(ctx, a, p)
	}
	out, err := d.applyRequest(ctx, p, false)
	if err != nil {
		return fmt.Errorf("%s: applying %s: %s", p.source, p.key(), redact.APIError(err))
	}
	p.live = out
	p.health = apply.HealthOf(out)
	return nil
}

// waitMapping waits for a kind whose CRD an earlier wave applied to be served.
func (d *Daemon) waitMapping(ctx context.Context, p *planned) (*meta.RESTMapping, error) {
	deadline := time.Now().Add(d.o.WaveTimeout)
	for {
		m, err := d.mapping(p.obj.GroupVersionKind())
		if err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %s: the kind is still not served: %v", p.source, p.obj.GroupVersionKind(), err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d.o.PollInterval):
		}
	}
}

// waitHealthy polls the objects of a wave until each is Healthy (or Suspended), one is a
// failed hook, or the wave timeout passes.
func (d *Daemon) waitHealthy(ctx context.Context, ps []*planned, what string) error {
	deadline := time.Now().Add(d.o.WaveTimeout)
	for {
		var pending []*planned
		for _, p := range ps {
			if p.health.Status != apply.Healthy && p.health.Status != apply.Suspended {
				pending = append(pending, p)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			p := pending[0]
			return fmt.Errorf("%s did not become healthy within %s: %s %s is %s: %s (%d object(s) waiting)", what, d.o.WaveTimeout, p.key().Kind, p.obj.GetName(), p.health.Status, p.health.Message, len(pending))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.o.PollInterval):
		}
		for _, p := range pending {
			u, err := d.resource(p.mapping, p.obj.GetNamespace()).Get(ctx, p.obj.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				p.health = apply.Health{Status: apply.Missing}
			case err != nil:
				p.health = apply.Health{Status: apply.Unknown, Message: redact.APIError(err)}
			default:
				p.live, p.health = u, apply.HealthOf(u)
			}
			if p.isHook() && p.health.Status == apply.Degraded {
				return fmt.Errorf("hook %s %s failed: %s", p.key().Kind, p.obj.GetName(), p.health.Message)
			}
		}
	}
}

// createNamespace creates the destination namespace (CreateNamespace=true) with the
// managed namespace metadata.
func (d *Daemon) createNamespace(ctx context.Context, a *v1alpha1.Application) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.Spec.Destination.Namespace}}
	if m := a.Spec.SyncPolicy.ManagedNamespaceMetadata; m != nil {
		ns.Labels, ns.Annotations = m.Labels, m.Annotations
	}
	_, err := d.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %s", ns.Name, redact.APIError(err))
	}
	d.m.writes.WithLabelValues("create").Inc()
	return nil
}

// noteWrite remembers a resourceVersion this daemon wrote, so its watch echo does not
// count as drift.
func (d *Daemon) noteWrite(u *unstructured.Unstructured) {
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
