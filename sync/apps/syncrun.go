package apps

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// syncRun is one sync of one application, in named steps: fetch (the source) → render →
// plan → compare (with the inventory) → guard → diff, report or operate (hooks, waves,
// prune, record). Each step leaves what the next needs in the run.
type syncRun struct {
	d     *Daemon
	a     *v1alpha1.Application
	t     Trigger
	seen  map[string]bool
	start time.Time
	st    *Status

	checkout string // the checkout's directory, trimmed from messages
	proj     *v1alpha1.AppProject
	co       gitsource.Checkout
	dir      string
	r        rendered
	inputs   []Input // the secrets the render read
	rules    []apply.IgnoreRule
	inv      *inventory

	planned         []*apply.Planned
	resources       []*apply.Planned
	hooks           []*apply.Planned
	childNames      []string
	automated       *v1alpha1.SyncPolicyAutomated
	pruneOn         bool
	prune           []apply.Key
	goneChildren    []string
	changed         int
	nsMissing       bool
	nsStale         bool // the managed namespace metadata differs
	needed, allowed bool
	// source and secrets are this run's desired state apart from the revision (see
	// desiredDigests); reason is why an automated application applies it.
	source, secrets string
	reason          string
	resuming        bool         // an operation of this desired state waits for health: continue it
	offline         error        // git could not be reached: the run goes on from cached
	stale           error        // the secrets could not be read again: the last render is used
	cached          *renderCache // the last render, when offline
	op              *operation   // the operation this run carries on (operate)
}

// finish records the status and its metrics, schedules a retry after a failed poll and
// logs the outcome.
func (s *syncRun) finish(result string) *Status {
	d, st := s.d, s.st
	st.SyncedAt = time.Now().UTC().Truncate(time.Second)
	st.Duration = time.Since(s.start).Round(time.Millisecond).String()
	d.m.syncs.WithLabelValues(result).Inc()
	d.m.duration.Observe(time.Since(s.start).Seconds())
	if s.stale != nil && s.offline == nil {
		// Compared with the last render: whether a secret rotated is not known.
		msg := s.stale.Error()
		if result == "failed" {
			msg += "; and the comparison failed: " + st.Message
		}
		st.Sync, st.Message = Unknown, msg
	}
	if s.offline != nil {
		// Compared with (and drift reverted to) the last render only: whether git moved is
		// not known.
		what := "compared with"
		if result == "synced" {
			what = "drift reverted to"
		}
		msg := fmt.Sprintf("git unreachable, %s the last render (revision %s); new commits wait: %v", what, s.cached.revision, s.offline)
		if result == "failed" {
			msg += "; and the comparison failed: " + st.Message
		}
		st.Sync, st.Message = Unknown, msg
	}
	d.mu.Lock()
	prev := d.status[st.Name]
	d.mu.Unlock()
	d.setStatus(st)
	if s.t == Poll {
		d.scheduleRetry(s.a, st)
	}
	level := slog.LevelInfo
	if result == "waiting" && prev != nil && prev.Operation != nil && prev.Message == st.Message {
		level = slog.LevelDebug // still waiting for the same: said once
	}
	d.log.Log(context.Background(), level, "sync", "app", s.a.Name, "revision", st.Revision, "reason", st.Reason, "sync", st.Sync, "health", st.Health,
		"applied", st.Applied, "unchanged", st.Unchanged, "pruned", st.Pruned, "result", result, "message", st.Message)
	return st
}

// fail ends the run with err: file names lose the checkout's directory, and a cluster that
// could not be reached leaves the health unknown.
func (s *syncRun) fail(err error) *Status {
	st := s.st
	st.Message = err.Error()
	if s.checkout != "" {
		st.Message = strings.ReplaceAll(st.Message, s.checkout+string(filepath.Separator), "")
	}
	st.failed = true
	var uerr *url.Error
	switch {
	case errors.As(err, &uerr):
		st.Health = apply.Unknown // the cluster could not be reached: nothing is known
	case st.Health == apply.Unknown || st.Health == apply.Healthy:
		st.Health = apply.Degraded
	}
	return s.finish("failed")
}

// fetch checks the source against the project and checks it out; every check and the fetch
// see one canonical repository URL.
func (s *syncRun) fetch(ctx context.Context, root bool) error {
	a := s.a
	if a.Spec.Source != nil {
		canon, err := gitsource.CanonicalURL(a.Spec.Source.RepoURL)
		if err != nil {
			return fmt.Errorf("spec.source.repoURL: %w", err)
		}
		a.Spec.Source.RepoURL = canon
	}
	proj, err := s.d.project(a.Spec.Project)
	if err != nil {
		return err
	}
	s.proj = proj
	if err := permitSource(proj, a); err != nil {
		return fmt.Errorf("%w; nothing was fetched or applied", err)
	}
	if s.d.takeRecheck(a.Name) {
		// Looking again at an operation waiting for health: its render, not a new fetch.
		if c := s.d.lastRender(a); c != nil && s.d.waitingAt(a.Name, c.revision) {
			s.cached, s.co = c, gitsource.Checkout{Revision: c.revision}
			s.st.Revision = c.revision
			return nil
		}
	}
	if s.co, s.dir, err = s.d.source(ctx, a, root); err != nil {
		// Git (or the cache) is out of reach: a poll still compares the live state with the
		// last render of this Application, so drift of a selfHeal application is reverted
		// without git. New commits wait; the status says so.
		if c := s.d.lastRender(a); c != nil && s.t == Poll {
			s.offline, s.cached = err, c
			s.co = gitsource.Checkout{Revision: c.revision}
			s.st.Revision = c.revision
			return nil
		}
		return err
	}
	s.st.Revision, s.checkout = s.co.Revision, s.co.Dir
	return nil
}

// render renders the source, expands the ApplicationSets it holds, and checks its child
// applications (their project, cycles, names taken elsewhere).
func (s *syncRun) render(ctx context.Context) error {
	d, a := s.d, s.a
	var docs []*manifest.Document
	var inputs []Input
	var err error
	if s.cached != nil {
		docs, inputs = s.cached.docs, s.cached.inputs
	} else if docs, inputs, err = d.renderApp(ctx, a, s.co.Dir, s.dir, s.co.Revision, s.t); err != nil {
		var stale *staleSecrets
		if !errors.As(err, &stale) {
			return fmt.Errorf("render failed, nothing applied or pruned: %w", err)
		}
		s.stale, err = stale, nil
	}
	s.inputs = inputs
	if s.r, err = classify(docs); err != nil {
		return fmt.Errorf("render output, nothing applied or pruned: %w", err)
	}
	for _, set := range s.r.sets {
		generated, err := d.generate(ctx, set, false)
		if err != nil {
			return fmt.Errorf("nothing applied or pruned: %w", err)
		}
		s.r.children = append(s.r.children, generated...)
	}
	if s.rules, err = compileIgnores(a.Spec.IgnoreDifferences); err != nil {
		return err
	}
	respect := a.Options().Has("RespectIgnoreDifferences=true")
	replace := a.Options().Has("Replace=true") || a.Options().Has("Force=true")
	for _, it := range s.r.items {
		it.Respect = respect
		// An immutable field that changes: recreated only when asked (Argo CD's options).
		it.Recreate = replace || resourceOption(it.Obj, "Replace=true") || resourceOption(it.Obj, "Force=true")
	}
	for _, c := range s.r.children {
		if c.Spec.Project != a.Spec.Project && !(c.Spec.Project == "" && a.Spec.Project == "default") && !(a.Spec.Project == "" && c.Spec.Project == "default") {
			return fmt.Errorf("child application %s names project %q: a child application stays in its parent's project (%q)", c.Name, c.Spec.Project, a.Spec.Project)
		}
		if s.seen[c.Name] {
			return fmt.Errorf("child application %s is already in this tree above it (a cycle)", c.Name)
		}
		d.mu.Lock()
		e, ok := d.apps[c.Name]
		d.mu.Unlock()
		if ok && (e.root || e.parent != a.Name) {
			return fmt.Errorf("child application %s: an application of that name already belongs to %s", c.Name, orRoot(e))
		}
	}
	return nil
}

// plan reads the inventory, plans every object (live state, dry run) and checks each
// against the project; hooks and resources go apart.
func (s *syncRun) plan(ctx context.Context) error {
	d, a := s.d, s.a
	var err error
	if s.inv, err = d.readInventory(ctx, a.Name); err != nil {
		return err
	}
	if err := d.annotateChecksums(ctx, a, s.r.items, s.t); err != nil {
		return err
	}
	if s.planned, err = d.eng.Plan(ctx, apply.PlanOptions{Namespace: a.Spec.Destination.Namespace, CreatesNamespace: a.Options().Has("CreateNamespace=true"),
		Owner: owner(a.Name), Rules: s.rules}, s.r.items); err != nil {
		return err
	}
	var refused []string
	for _, p := range s.planned {
		namespaced := p.Obj.GetNamespace() != ""
		if err := permitKind(s.proj, a.Spec.Project, a.Spec.Destination, p.Key().Group, p.Key().Kind, p.Obj.GetNamespace(), namespaced); err != nil {
			refused = append(refused, fmt.Sprintf("%s: %s: %v", p.Source, p.Key(), err))
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fmt.Errorf("the project refuses %d object(s), nothing was applied:\n  %s", len(refused), strings.Join(refused, "\n  "))
	}
	for _, p := range s.planned {
		if p.IsHook() {
			s.hooks = append(s.hooks, p)
		} else {
			s.resources = append(s.resources, p)
		}
	}
	return nil
}

// compare sets what the sync would do against the inventory: the objects and child
// applications that left git, how many objects change, whether the namespace is missing,
// whether a sync is needed and allowed.
func (s *syncRun) compare(ctx context.Context) {
	d, a, inv := s.d, s.a, s.inv
	desired := map[apply.Key]bool{}
	for _, p := range s.resources {
		desired[p.Key()] = true
	}
	s.childNames = make([]string, 0, len(s.r.children))
	for _, c := range s.r.children {
		s.childNames = append(s.childNames, c.Name)
	}
	s.st.Children = s.childNames
	s.automated = a.Automated()
	s.pruneOn = s.automated != nil && s.automated.Prune && !a.Options().Has("Prune=false")
	for _, k := range inv.Entries {
		if !desired[k] {
			s.prune = append(s.prune, k)
		}
	}
	for _, c := range inv.Children {
		if !slices.Contains(s.childNames, c) {
			s.goneChildren = append(s.goneChildren, c)
		}
	}
	for _, p := range s.resources {
		if p.Action != apply.Unchanged {
			s.changed++
		}
	}
	s.nsMissing, s.nsStale = d.namespaceState(ctx, a)
	s.needed = s.changed > 0 || (s.pruneOn && (len(s.prune) > 0 || len(s.goneChildren) > 0)) || s.nsMissing || s.nsStale
	s.reason = s.why(ctx)
	s.resuming = s.d.resumes(s.a.Name, s.opKey())
	s.needed = s.needed || s.resuming
	s.allowed = s.t == Explicit || s.resuming || (s.automated != nil && (s.reason != "" || s.automated.SelfHeal))
}

// why says what changed in the desired state since the inventory's last sync: a new
// revision, the Application itself, or a secret its render read (a rotation, at the same
// revision: a change of what is wanted, like a commit, not drift of what is live) — or ""
// when only the live state can differ. An inventory written before keyway recorded the
// last two counts them as unchanged.
func (s *syncRun) why(ctx context.Context) string {
	inv := s.inv
	spec, _ := json.Marshal(s.a.Spec)
	sum := sha256.Sum256(spec)
	s.source = hex.EncodeToString(sum[:16])
	s.secrets = ""
	if len(s.inputs) > 0 && s.t != DiffOnly {
		key, err := s.d.checksumKey(ctx, true)
		if err != nil {
			s.d.log.Warn("secret inputs not compared", "app", s.a.Name, "error", err)
		} else {
			s.secrets = inputsDigest(key, s.inputs)
		}
	}
	switch {
	case !inv.exists:
		return "new"
	case inv.Revision != s.co.Revision:
		return "revision"
	case inv.Source != "" && inv.Source != s.source:
		return "application"
	case inv.Secrets != "" && s.secrets != "" && inv.Secrets != s.secrets:
		return "secrets"
	}
	return ""
}

// inputsDigest is an HMAC, under the checksum key, of what each secret a render read
// returned: it tells a rotation apart without letting the inventory be used to guess a value.
func inputsDigest(key []byte, inputs []Input) string {
	lines := make([]string, 0, len(inputs))
	for _, in := range inputs {
		lines = append(lines, in.Ref.String()+"\x00"+in.Hash)
	}
	slices.Sort(lines)
	mac := hmac.New(sha256.New, key)
	for _, l := range lines {
		mac.Write([]byte(l + "\n"))
	}
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// record notes in the inventory that this run's desired state is applied.
func (s *syncRun) record(inv *inventory) {
	inv.Revision, inv.Source = s.co.Revision, s.source
	if s.secrets != "" || len(s.inputs) == 0 {
		inv.Secrets = s.secrets
	}
}

// guard holds a sync that would prune everything, or more than --max-prune without the
// revision's confirmation, before anything is written; nil lets it go on.
func (s *syncRun) guard() *Status {
	d, a, inv, st := s.d, s.a, s.inv, s.st
	if len(s.resources) == 0 && len(s.r.children) == 0 && len(inv.Entries)+len(inv.Children) > 0 && (s.automated == nil || !s.automated.AllowEmpty) {
		st.Sync, st.final = OutOfSync, true
		return s.fail(fmt.Errorf("the render produced no resources; refusing to prune all %d objects and %d child applications of the application (set syncPolicy.automated.allowEmpty: true if that is meant)", len(inv.Entries), len(inv.Children)))
	}
	confirm := fmt.Sprintf("kubectl -n %s annotate configmap %s %s=%s --overwrite", d.o.StateNamespace, inventoryName(a.Name), AnnotationConfirm, s.co.Revision)
	// Child applications that leave count like objects: removing one may delete all it holds.
	gone := len(s.prune) + len(s.goneChildren)
	if s.pruneOn && gone > 0 && inv.Confirm != s.co.Revision && gone*100 > d.o.MaxPrune*(len(inv.Entries)+len(inv.Children)) {
		st.Sync, st.Health = OutOfSync, apply.Unknown
		st.Held = fmt.Sprintf("this sync would prune %d of the application's %d objects, more than --max-prune %d%%; nothing was applied. To go ahead: %s", gone, len(inv.Entries)+len(inv.Children), d.o.MaxPrune, confirm)
		st.Message = st.Held
		st.failed, st.final = true, true
		return s.finish("held")
	}
	return nil
}

// registerChildren makes the child applications known, so they are synced in their wave.
func (s *syncRun) registerChildren() {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, c := range s.r.children {
		s.d.apps[c.Name] = &appEntry{app: c, parent: s.a.Name}
	}
}

// diff reports what an explicit sync would change (keyway diff), writing nothing.
func (s *syncRun) diff(ctx context.Context) *Status {
	st := s.st
	var pruned []apply.Key
	if s.pruneOn {
		pruned = s.prune
	}
	st.Diffs = apply.Diffs(s.planned, pruned)
	st.Sync = Synced
	if len(st.Diffs) > 0 || s.nsMissing || s.nsStale {
		st.Sync = OutOfSync
	}
	s.registerChildren()
	if err := s.d.walkWaves(ctx, s.a, s.resources, s.r.children, readOnly, nil, s.t, s.seen, st); err != nil {
		return s.fail(err)
	}
	return s.finish("diff")
}

// report ends a run with nothing to do, or with drift the application does not sync on its
// own: health is read wave by wave, and an unchanged application's inventory records the
// revision.
func (s *syncRun) report(ctx context.Context) *Status {
	st := s.st
	st.Sync = Synced
	if s.needed {
		st.Sync = OutOfSync
		st.Message = "drift found; the application does not sync on its own (syncPolicy.automated, selfHeal)"
	}
	st.Unchanged = len(s.resources) - s.changed
	if err := s.d.walkWaves(ctx, s.a, s.resources, s.r.children, readOnly, nil, s.t, s.seen, st); err != nil {
		return s.fail(err)
	}
	if s.needed {
		return s.finish("outofsync")
	}
	entries, children := keys(s.resources), s.childNames
	if !s.pruneOn && (len(s.prune) > 0 || len(s.goneChildren) > 0) {
		// Left in place, not forgotten: the inventory keeps them (a later sync that may
		// prune still knows them), and the application says OutOfSync, as Argo CD does.
		entries, children = append(entries, s.prune...), append(slices.Clone(children), s.goneChildren...)
		st.Sync = OutOfSync
		st.Message = fmt.Sprintf("%d object(s) left git but are not pruned (syncPolicy.automated.prune is off, or Prune=false)", len(s.prune)+len(s.goneChildren))
	}
	s.record(s.inv)
	if err := s.d.writeInventoryAs(ctx, s.a, s.inv, entries, children); err != nil {
		return s.fail(err)
	}
	return s.finish("noop")
}

// operate is the sync itself, under the application's lock with replicas: the inventory
// first takes in everything about to be applied (an interrupted sync still knows what it
// created), then the namespace, PreSync hooks, the waves, the prune and removed children,
// PostSync hooks, and the inventory as it ends. A failure runs the SyncFail hooks.
func (s *syncRun) operate(ctx context.Context) *Status {
	d, a, inv, st := s.d, s.a, s.inv, s.st
	if d.shard != nil {
		release, err := d.shard.lock(ctx, a.Name)
		if err != nil {
			st.Message = err.Error()
			return s.finish("skipped")
		}
		defer release()
	}
	st.Reason = s.reason
	switch {
	case s.t == Explicit:
		st.Reason = "explicit"
	case st.Reason == "":
		st.Reason = "drift" // selfHeal
	}
	grown := *inv
	grown.Entries = append(slices.Clone(inv.Entries), keys(s.resources)...)
	grown.Children = append(slices.Clone(inv.Children), s.childNames...)
	grown.Finalizer = slices.Contains(a.Finalizers, v1alpha1.ResourcesFinalizer)
	if err := d.writeInventoryAs(ctx, a, &grown, grown.Entries, grown.Children); err != nil {
		return s.fail(err)
	}
	syncFail := func(err error) *Status {
		if herr := d.runHooks(ctx, a, s.hooks, PhaseSyncFail, nil, false); herr != nil {
			err = fmt.Errorf("%w; SyncFail hooks: %v", err, herr)
		}
		st.Sync = OutOfSync
		return s.fail(err)
	}
	if s.nsMissing || s.nsStale {
		if err := d.applyNamespace(ctx, a); err != nil {
			return syncFail(err)
		}
	}
	s.op = d.beginOp(a.Name, s.opKey())
	waits := false
	defer func() {
		if !waits {
			d.endOp(a.Name)
		}
	}()
	// A poll of the running daemon does not wait for health on its worker: a wave or a
	// hook wave that is not healthy yet ends this run as a waiting operation, and the
	// application is looked at again shortly (see handle).
	mode := applyWait
	if s.t == Poll && d.runQueue() != nil {
		mode = applyNoWait
	}
	stopped := func(err error) *Status {
		var w *waiting
		if errors.As(err, &w) {
			if err = s.wait(w); err == nil {
				waits = true
				return s.finish("waiting")
			}
		}
		return syncFail(err)
	}
	if err := d.runHooks(ctx, a, s.hooks, PhasePreSync, s.op, mode == applyNoWait); err != nil {
		return stopped(err)
	}
	if err := d.walkWaves(ctx, a, append(s.resources, syncHooks(s.hooks)...), s.r.children, mode, s.op, s.t, s.seen, st); err != nil {
		return stopped(err)
	}
	pruned, skipped, err := d.prune(ctx, a, s.prune, s.pruneOn, inv.Confirm == s.co.Revision)
	st.Pruned = pruned
	if err != nil {
		return syncFail(err)
	}
	if s.pruneOn {
		for _, c := range s.goneChildren {
			if err := d.removeChild(ctx, a.Name, c, false); err != nil {
				return syncFail(err)
			}
		}
	}
	if err := d.runHooks(ctx, a, s.hooks, PhasePostSync, s.op, mode == applyNoWait); err != nil {
		return stopped(err)
	}
	final := keys(s.resources)
	if !s.pruneOn {
		final = append(final, s.prune...) // still applied by this application, left in place
	}
	final = append(final, skipped...)
	children := s.childNames
	if !s.pruneOn {
		children = append(children, s.goneChildren...)
	}
	s.record(&grown)
	if err := d.writeInventoryAs(ctx, a, &grown, final, children); err != nil {
		return s.fail(err)
	}
	st.Sync = Synced
	if len(skipped) > 0 || (!s.pruneOn && len(s.prune) > 0) {
		st.Sync = OutOfSync
		st.Message = fmt.Sprintf("%d object(s) left git but are not pruned (syncPolicy.automated.prune is off, or Prune=false/confirm)", len(s.prune))
	}
	return s.finish("synced")
}
