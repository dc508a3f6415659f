package apps

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyway-dev/keyway/internal/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// Run keeps the applications converged until ctx ends: every interval it queues them all
// (Poll: automated applications follow git, drift of the others is reported), and it
// watches the kinds they applied, so a self-healing application whose object is changed
// or deleted syncs again within moments. Options.Workers workers sync side by side from one
// keyed queue: an application is handed to one worker at a time (never synced twice at
// once), and one that is slow or waits for health holds only its own worker. Webhooks,
// drift and due retries come before the periodic pass. When ctx ends no sync starts; the
// ones in flight stop at their next wave boundary, and Run returns once they have.
func (d *Daemon) Run(ctx context.Context, interval time.Duration) error {
	mc, err := metadata.NewForConfig(d.o.Config)
	if err != nil {
		return err
	}
	factory := metadatainformer.NewSharedInformerFactory(mc, 0)
	defer factory.Shutdown()
	w := &watcher{d: d, factory: factory, watched: map[schema.GroupVersionResource]bool{}, heal: make(chan string, 1)}
	w.pending = map[string]bool{}

	work := context.WithoutCancel(ctx) // a sync that started finishes its wave
	d.stopping = ctx
	if o := d.o.Sharding; o != nil {
		if o.LeaseDuration <= 0 {
			o.LeaseDuration = 15 * time.Second
		}
		if o.RenewPeriod <= 0 {
			o.RenewPeriod = 2 * time.Second
		}
		d.shard = &sharder{o: *o, kube: d.hub.kube, ns: d.o.StateNamespace}
		d.shard.tick(ctx)
		go d.shard.run(ctx)
	}
	q := kube.NewQueue()
	d.mu.Lock()
	d.queue = q
	// What may legitimately hold every worker at once: hooks waiting out a wave's timeout,
	// a git fetch at its deadline, a render; a pass comes every interval.
	d.stallAfter = 2*interval + d.o.WaveTimeout + 2*time.Minute
	d.mu.Unlock()
	d.progress.Store(time.Now().UnixNano())
	workers := make(chan struct{})
	go func() {
		defer close(workers)
		kube.RunWorkers(ctx, d.o.Workers, q, d.log, func(_ context.Context, key string) {
			// Not the worker's context: a sync that started finishes its wave when Run is
			// stopped. Its own budget: hook phases and a wave may each wait --wave-timeout,
			// git --git-timeout.
			sctx, cancel := context.WithTimeout(work, 3*d.o.WaveTimeout+10*time.Minute)
			defer cancel()
			d.handle(sctx, key)
		})
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	d.queueAll(q)
	for {
		select {
		case <-ctx.Done():
			<-workers // every sync in flight has returned
			return ctx.Err()
		case <-tick.C:
			if d.o.Reload != nil {
				m, refused := d.o.Reload()
				d.Reload(ctx, m, refused)
			}
			d.queueAll(q)
			w.ensure(ctx)
		case app := <-d.refresh:
			d.log.Info("webhook: syncing", "app", app)
			q.Add(app, kube.High)
		case <-retry.C:
			for _, app := range d.dueRetries() {
				d.log.Info("retrying a failed sync", "app", app)
				q.Add(app, kube.High)
			}
			w.ensure(ctx) // the kinds of applications synced since
		case <-w.heal:
			for _, app := range w.take() {
				d.log.Info("drift seen: syncing", "app", app)
				q.Add(app, kube.High)
			}
		}
	}
}

// setPrefix marks an ApplicationSet's key in the work queue.
const setPrefix = "ApplicationSet/"

// queueAll queues every root application this replica owns and every ApplicationSet of
// the operator's, for a periodic pass.
func (d *Daemon) queueAll(q *kube.Queue) {
	for _, a := range d.roots() {
		if d.shard == nil || d.shard.owns(a.Name) {
			q.Add(a.Name, kube.Low)
		}
	}
	d.mu.Lock()
	sets := slices.Sorted(maps.Keys(d.sets))
	d.mu.Unlock()
	for _, s := range sets {
		q.Add(setPrefix+s, kube.Low)
	}
}

// handle is one worker's job: a sync of the application (or ApplicationSet) key names.
func (d *Daemon) handle(ctx context.Context, key string) {
	defer func() { d.progress.Store(time.Now().UnixNano()) }()
	if d.o.BeforeSync != nil {
		d.o.BeforeSync(key)
	}
	if name, ok := strings.CutPrefix(key, setPrefix); ok {
		d.mu.Lock()
		set := d.sets[name]
		d.mu.Unlock()
		if set != nil {
			d.syncSet(ctx, set, Poll)
		}
		return
	}
	if st, ok := d.SyncOne(ctx, key, Poll); ok && st.Operation != nil {
		// Waiting for a wave's health holds no worker: look again shortly — after 1 s, then
		// less often the longer it waits (up to every 10 s) — from the operation's render,
		// without asking git.
		waited := time.Since(st.Operation.WaitingSince)
		delay := min(max(d.o.PollInterval, waited/4), 10*time.Second)
		d.mu.Lock()
		d.rechecks[key] = true
		d.mu.Unlock()
		time.AfterFunc(delay, func() { d.requeue(key) })
	}
}

// takeRecheck reports whether the named application was queued to look at its waiting
// operation again, and clears it.
func (d *Daemon) takeRecheck(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ok := d.rechecks[name]
	delete(d.rechecks, name)
	return ok
}

// requeue queues key again (Low: after the work that is new), unless Run has ended.
func (d *Daemon) requeue(key string) {
	if q := d.runQueue(); q != nil {
		q.Add(key, kube.Low)
	}
}

type watcher struct {
	d       *Daemon
	factory metadatainformer.SharedInformerFactory
	watched map[schema.GroupVersionResource]bool

	mu      sync.Mutex
	pending map[string]bool
	heal    chan string
}

// ensure watches every kind a self-healing application applied.
func (w *watcher) ensure(ctx context.Context) {
	added := false
	for _, st := range w.d.Statuses() {
		if !w.d.selfHeals(st.Name) {
			continue
		}
		for _, r := range st.Resources {
			m, err := w.d.mapper.RESTMapping(schema.GroupKind{Group: r.Group, Kind: r.Kind})
			if err != nil || w.watched[m.Resource] {
				continue
			}
			w.watched[m.Resource] = true
			inf := w.factory.ForResource(m.Resource).Informer()
			_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				// A watch starts after the sync that applied its kind: an object changed
				// in between arrives in the first list, not as an update.
				AddFunc:    func(obj any) { w.added(obj) },
				UpdateFunc: func(old, cur any) { w.changed(old, cur) },
				DeleteFunc: func(obj any) { w.deleted(obj) },
			})
			added = true
		}
	}
	if added {
		w.factory.Start(ctx.Done())
	}
}

func (w *watcher) changed(old, cur any) {
	o, ok1 := old.(*metav1.PartialObjectMetadata)
	n, ok2 := cur.(*metav1.PartialObjectMetadata)
	if !ok1 || !ok2 {
		return
	}
	// Status updates change neither generation, labels nor annotations. Kinds without a
	// generation (ConfigMap, Secret) have no status: any new version is a change.
	if n.Generation != 0 && o.Generation == n.Generation && maps.Equal(o.Labels, n.Labels) && maps.Equal(o.Annotations, n.Annotations) {
		return
	}
	if o.ResourceVersion == n.ResourceVersion {
		return // a resync
	}
	w.d.mu.Lock()
	ours := w.d.written[string(n.UID)+"/"+n.ResourceVersion]
	w.d.mu.Unlock()
	if ours {
		return
	}
	w.queue(n.Annotations[AnnotationTracking])
}

// added queues the application of an object listed when its kind's watch started, unless
// this daemon wrote that version: a sync that finds nothing to do writes nothing.
func (w *watcher) added(obj any) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	w.d.mu.Lock()
	ours := w.d.written[string(m.UID)+"/"+m.ResourceVersion]
	w.d.mu.Unlock()
	if !ours {
		w.queue(m.Annotations[AnnotationTracking])
	}
}

func (w *watcher) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		w.queue(m.Annotations[AnnotationTracking])
	}
}

func (w *watcher) queue(tracking string) {
	app, _, ok := strings.Cut(tracking, ":")
	if !ok || !w.d.selfHeals(app) {
		return
	}
	w.mu.Lock()
	w.pending[app] = true
	w.mu.Unlock()
	select {
	case w.heal <- app:
	default:
	}
}

func (w *watcher) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.pending))
	for a := range w.pending {
		out = append(out, a)
	}
	w.pending = map[string]bool{}
	return out
}

// selfHeals reports whether the named application reverts drift on its own.
func (d *Daemon) selfHeals(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.apps[name]
	if !ok {
		return false
	}
	auto := e.app.Automated()
	return auto != nil && auto.SelfHeal
}
