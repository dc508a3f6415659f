package apps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
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
	start := time.Now()
	st := &Status{Name: a.Name, Parent: parent, Cluster: destLabel(a.Spec.Destination), Sync: Unknown, Health: kube.Unknown}
	finish := func(result string) *Status {
		st.SyncedAt = time.Now().UTC().Truncate(time.Second)
		st.Duration = time.Since(start).Round(time.Millisecond).String()
		d.m.syncs.WithLabelValues(result).Inc()
		d.m.duration.Observe(time.Since(start).Seconds())
		d.setStatus(st)
		if t == Poll {
			d.scheduleRetry(a, st)
		}
		d.log.Info("sync", "app", a.Name, "revision", st.Revision, "sync", st.Sync, "health", st.Health,
			"applied", st.Applied, "unchanged", st.Unchanged, "pruned", st.Pruned, "result", result, "message", st.Message)
		return st
	}
	checkout := "" // trimmed from messages: file names are the repository's
	fail := func(err error) *Status {
		st.Message = err.Error()
		if checkout != "" {
			st.Message = strings.ReplaceAll(st.Message, checkout+string(filepath.Separator), "")
		}
		st.failed = true
		var uerr *url.Error
		switch {
		case errors.As(err, &uerr):
			st.Health = kube.Unknown // the cluster could not be reached: nothing is known
		case st.Health == kube.Unknown || st.Health == kube.Healthy:
			st.Health = kube.Degraded
		}
		return finish("failed")
	}
	seen = with(seen, a.Name)
	if terr != nil {
		st.Health = kube.Unknown
		return fail(terr)
	}

	// Every check below and the fetch see one canonical repository URL.
	if a.Spec.Source != nil {
		canon, err := gitsource.CanonicalURL(a.Spec.Source.RepoURL)
		if err != nil {
			return fail(fmt.Errorf("spec.source.repoURL: %w", err))
		}
		a.Spec.Source.RepoURL = canon
	}
	proj, err := d.project(a.Spec.Project)
	if err != nil {
		return fail(err)
	}
	if err := permitSource(proj, a); err != nil {
		return fail(fmt.Errorf("%w; nothing was fetched or applied", err))
	}
	co, dir, err := d.source(ctx, a, root)
	if err != nil {
		return fail(err)
	}
	st.Revision, checkout = co.Revision, co.Dir
	docs, err := d.renderApp(ctx, a, co.Dir, dir, co.Revision, t)
	if err != nil {
		return fail(fmt.Errorf("render failed, nothing applied or pruned: %w", err))
	}
	r, err := classify(docs)
	if err != nil {
		return fail(fmt.Errorf("render output, nothing applied or pruned: %w", err))
	}
	for _, set := range r.sets {
		generated, err := d.generate(ctx, set, false)
		if err != nil {
			return fail(fmt.Errorf("nothing applied or pruned: %w", err))
		}
		r.children = append(r.children, generated...)
	}
	rules, err := compileIgnores(a.Spec.IgnoreDifferences)
	if err != nil {
		return fail(err)
	}
	respect := a.Options().Has("RespectIgnoreDifferences=true")
	for _, it := range r.items {
		it.respect = respect
	}
	for _, c := range r.children {
		if c.Spec.Project != a.Spec.Project && !(c.Spec.Project == "" && a.Spec.Project == "default") && !(a.Spec.Project == "" && c.Spec.Project == "default") {
			return fail(fmt.Errorf("child application %s names project %q: a child application stays in its parent's project (%q)", c.Name, c.Spec.Project, a.Spec.Project))
		}
		if seen[c.Name] {
			return fail(fmt.Errorf("child application %s is already in this tree above it (a cycle)", c.Name))
		}
		d.mu.Lock()
		e, ok := d.apps[c.Name]
		d.mu.Unlock()
		if ok && (e.root || e.parent != a.Name) {
			return fail(fmt.Errorf("child application %s: an application of that name already belongs to %s", c.Name, orRoot(e)))
		}
	}
	inv, err := d.readInventory(ctx, a.Name)
	if err != nil {
		return fail(err)
	}
	if err := d.annotateChecksums(ctx, a, r.items, t); err != nil {
		return fail(err)
	}
	plan, err := d.plan(ctx, a, r.items, rules)
	if err != nil {
		return fail(err)
	}
	var refused []string
	for _, p := range plan {
		namespaced := p.obj.GetNamespace() != ""
		if err := permitKind(proj, a.Spec.Project, a.Spec.Destination, p.key().Group, p.key().Kind, p.obj.GetNamespace(), namespaced); err != nil {
			refused = append(refused, fmt.Sprintf("%s: %s: %v", p.source, p.key(), err))
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fail(fmt.Errorf("the project refuses %d object(s), nothing was applied:\n  %s", len(refused), strings.Join(refused, "\n  ")))
	}

	var resources, hooks []*planned
	for _, p := range plan {
		if p.isHook() {
			hooks = append(hooks, p)
		} else {
			resources = append(resources, p)
		}
	}
	desired := map[objKey]bool{}
	for _, p := range resources {
		desired[p.key()] = true
	}
	childNames := make([]string, 0, len(r.children))
	for _, c := range r.children {
		childNames = append(childNames, c.Name)
	}
	st.Children = childNames

	automated := a.Automated()
	pruneOn := automated != nil && automated.Prune
	var prune []objKey
	for _, k := range inv.Entries {
		if !desired[k] {
			prune = append(prune, k)
		}
	}
	var goneChildren []string
	for _, c := range inv.Children {
		if !slices.Contains(childNames, c) {
			goneChildren = append(goneChildren, c)
		}
	}

	// Guards, before anything is written.
	if len(resources) == 0 && len(r.children) == 0 && len(inv.Entries)+len(inv.Children) > 0 && (automated == nil || !automated.AllowEmpty) {
		st.Sync, st.final = OutOfSync, true
		return fail(fmt.Errorf("the render produced no resources; refusing to prune all %d objects and %d child applications of the application (set syncPolicy.automated.allowEmpty: true if that is meant)", len(inv.Entries), len(inv.Children)))
	}
	confirm := fmt.Sprintf("kubectl -n %s annotate configmap %s %s=%s --overwrite", d.o.StateNamespace, inventoryName(a.Name), AnnotationConfirm, co.Revision)
	// Child applications that leave count like objects: removing one may delete all it holds.
	if pruneOn && len(prune)+len(goneChildren) > 0 && inv.Confirm != co.Revision {
		if (len(prune)+len(goneChildren))*100 > d.o.MaxPrune*(len(inv.Entries)+len(inv.Children)) {
			st.Sync, st.Health = OutOfSync, kube.Unknown
			st.Held = fmt.Sprintf("this sync would prune %d of the application's %d objects, more than --max-prune %d%%; nothing was applied. To go ahead: %s", len(prune)+len(goneChildren), len(inv.Entries)+len(inv.Children), d.o.MaxPrune, confirm)
			st.Message = st.Held
			st.failed, st.final = true, true
			return finish("held")
		}
	}

	live := map[objKey]*unstructured.Unstructured{}
	for _, p := range resources {
		if p.live != nil {
			live[p.key()] = p.live
		}
	}
	changed := 0
	for _, p := range resources {
		if p.action != unchanged {
			changed++
		}
	}
	nsMissing := a.Options().Has("CreateNamespace=true") && a.Spec.Destination.Namespace != "" && !d.namespaceExists(ctx, a.Spec.Destination.Namespace)
	needed := changed > 0 || (pruneOn && (len(prune) > 0 || len(goneChildren) > 0)) || nsMissing
	allowed := t == Explicit || (automated != nil && (inv.Revision != co.Revision || automated.SelfHeal || !inv.exists))

	if t == DiffOnly {
		var pruned []objKey
		if pruneOn {
			pruned = prune
		}
		st.Diffs = diffs(plan, pruned)
		st.Sync = Synced
		if len(st.Diffs) > 0 || nsMissing {
			st.Sync = OutOfSync
		}
		d.mu.Lock()
		for _, c := range r.children {
			d.apps[c.Name] = &appEntry{app: c, parent: a.Name}
		}
		d.mu.Unlock()
		if err := d.walkWaves(ctx, a, resources, r.children, false, t, seen, st); err != nil {
			return fail(err)
		}
		return finish("diff")
	}

	// Child applications are registered before the sync so they can be synced in their wave.
	d.mu.Lock()
	for _, c := range r.children {
		d.apps[c.Name] = &appEntry{app: c, parent: a.Name}
	}
	d.mu.Unlock()

	if !needed || !allowed {
		st.Sync = Synced
		if needed {
			st.Sync = OutOfSync
			st.Message = "drift found; the application does not sync on its own (syncPolicy.automated, selfHeal)"
		}
		st.Unchanged = len(resources) - changed
		if err := d.walkWaves(ctx, a, resources, r.children, false, t, seen, st); err != nil {
			return fail(err)
		}
		if !needed {
			inv.Revision = co.Revision
			if err := d.writeInventoryAs(ctx, a, inv, keys(resources), childNames); err != nil {
				return fail(err)
			}
			return finish("noop")
		}
		return finish("outofsync")
	}

	// The operation: with replicas, under the application's lock.
	if d.shard != nil {
		release, err := d.shard.lock(ctx, a.Name)
		if err != nil {
			st.Message = err.Error()
			return finish("skipped")
		}
		defer release()
	}
	// The inventory first takes in everything about to be applied, so an interrupted sync
	// still knows what it created.
	grown := *inv
	grown.Entries = append(slices.Clone(inv.Entries), keys(resources)...)
	grown.Children = append(slices.Clone(inv.Children), childNames...)
	grown.Finalizer = slices.Contains(a.Finalizers, v1alpha1.ResourcesFinalizer)
	if err := d.writeInventoryAs(ctx, a, &grown, grown.Entries, grown.Children); err != nil {
		return fail(err)
	}
	syncFail := func(err error) *Status {
		if herr := d.runHooks(ctx, a, hooks, PhaseSyncFail); herr != nil {
			err = fmt.Errorf("%w; SyncFail hooks: %v", err, herr)
		}
		st.Sync = OutOfSync
		return fail(err)
	}
	if nsMissing {
		if err := d.createNamespace(ctx, a); err != nil {
			return syncFail(err)
		}
	}
	if err := d.runHooks(ctx, a, hooks, PhasePreSync); err != nil {
		return syncFail(err)
	}
	if err := d.walkWaves(ctx, a, append(resources, syncHooks(hooks)...), r.children, true, t, seen, st); err != nil {
		return syncFail(err)
	}
	pruned, skipped, err := d.prune(ctx, a, prune, pruneOn, inv.Confirm == co.Revision)
	st.Pruned = pruned
	if err != nil {
		return syncFail(err)
	}
	if pruneOn {
		for _, c := range goneChildren {
			if err := d.removeChild(ctx, a.Name, c, false); err != nil {
				return syncFail(err)
			}
		}
	}
	if err := d.runHooks(ctx, a, hooks, PhasePostSync); err != nil {
		return syncFail(err)
	}
	final := keys(resources)
	if !pruneOn {
		final = append(final, prune...) // still applied by this application, left in place
	}
	final = append(final, skipped...)
	children := childNames
	if !pruneOn {
		children = append(children, goneChildren...)
	}
	grown.Revision = co.Revision
	if err := d.writeInventoryAs(ctx, a, &grown, final, children); err != nil {
		return fail(err)
	}
	st.Sync = Synced
	if len(skipped) > 0 || (!pruneOn && len(prune) > 0) {
		st.Sync = OutOfSync
		st.Message = fmt.Sprintf("%d object(s) left git but are not pruned (syncPolicy.automated.prune is off, or Prune=false/confirm)", len(prune))
	}
	return finish("synced")
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

// walkWaves goes through the waves in order. When apply is set it applies what changed in
// each and waits for the wave to be healthy before the next; child applications sync in
// their wave either way. The status collects counts, resources and the worst health.
func (d *Daemon) walkWaves(ctx context.Context, a *v1alpha1.Application, ps []*planned, children []*v1alpha1.Application, apply bool, t Trigger, seen map[string]bool, st *Status) error {
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
	health := kube.Healthy
	worst := func(h kube.Health, what string) {
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
		if apply && i > 0 && d.stopping.Err() != nil {
			return fmt.Errorf("stopped before wave %d: the daemon is shutting down; the next start continues the sync", wave[0].wave)
		}
		var waitFor []*planned
		var childFailed []string
		for _, it := range wave {
			if c, ok := childOf[it]; ok {
				cs := d.syncRetrying(ctx, c, a.Name, false, t, seen)
				worst(kube.Health{Status: cs.Health, Message: cs.Message}, "application "+c.Name)
				if apply && cs.Health != kube.Healthy && cs.Health != kube.Suspended {
					// The wave's other applications still sync (one unreachable cluster
					// must not hold back the rest); the next wave waits.
					childFailed = append(childFailed, fmt.Sprintf("application %s is %s", c.Name, cs.Health))
				}
				continue
			}
			p := byItem[it]
			if apply && (p.action != unchanged || p.isHook()) {
				if err := d.applyOne(ctx, a, p); err != nil {
					return err
				}
				if !p.isHook() {
					st.Applied++
				}
			} else if !p.isHook() && apply {
				st.Unchanged++
			}
			waitFor = append(waitFor, p)
		}
		if len(childFailed) > 0 {
			return fmt.Errorf("wave %d: %s", wave[0].wave, strings.Join(childFailed, "; "))
		}
		if apply {
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
			if !apply && p.action != unchanged {
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
	p.health = kube.HealthOf(out)
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
			if p.health.Status != kube.Healthy && p.health.Status != kube.Suspended {
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
				p.health = kube.Health{Status: kube.Missing}
			case err != nil:
				p.health = kube.Health{Status: kube.Unknown, Message: redact.APIError(err)}
			default:
				p.live, p.health = u, kube.HealthOf(u)
			}
			if p.isHook() && p.health.Status == kube.Degraded {
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
