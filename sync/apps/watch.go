package apps

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// Run keeps the applications converged until ctx ends: every interval it syncs them all
// (Poll: automated applications follow git, drift of the others is reported), and it
// watches the kinds they applied, so a self-healing application whose object is changed
// or deleted syncs again within moments. One worker does all syncs, one at a time, so an
// application never syncs twice at once; the sync in progress finishes before Run returns.
func (d *Daemon) Run(ctx context.Context, interval time.Duration) error {
	mc, err := metadata.NewForConfig(d.o.Config)
	if err != nil {
		return err
	}
	factory := metadatainformer.NewSharedInformerFactory(mc, 0)
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
	tick := time.NewTicker(interval)
	defer tick.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	d.SyncAll(work, Poll)
	w.ensure(ctx)
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			return ctx.Err()
		case <-tick.C:
			d.SyncAll(work, Poll)
			w.ensure(ctx)
		case app := <-d.refresh:
			d.log.Info("webhook: syncing", "app", app)
			d.SyncOne(work, app, Poll)
			w.ensure(ctx)
		case <-retry.C:
			for _, app := range d.dueRetries() {
				d.log.Info("retrying a failed sync", "app", app)
				d.SyncOne(work, app, Poll)
			}
		case <-w.heal:
			for _, app := range w.take() {
				d.log.Info("drift seen: syncing", "app", app)
				d.SyncOne(work, app, Poll)
			}
			w.ensure(ctx)
		}
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
