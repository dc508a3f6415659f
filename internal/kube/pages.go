package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// An informer's first list is streamed item by item where the API server can (watch-list),
// each item going through the informer's transform as it comes; where it cannot (an etcd
// without watch progress requests) the informer lists, and a plain list decodes every object
// of the resource at once before any transform runs — every Secret of the cluster, Helm's
// release Secrets included. pagedListWatch asks for pages instead and transforms each page
// before the next, so a first list never holds more than one page of decoded objects.

// PagedInformer is an informer over list and watchFn whose first list comes a page at a
// time (see pagedListWatch), transform applied to listed and watched objects alike.
func PagedInformer[O any](list func(context.Context, metav1.ListOptions) ([]O, metav1.ListMeta, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	example runtime.Object, resync time.Duration, indexers cache.Indexers, transform cache.TransformFunc) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(pagedListWatch(list, watchFn, transform), example, resync, indexers)
	_ = inf.SetTransform(transform) // fails only once the informer runs
	return inf
}

// SecretInformer is a PagedInformer over every Secret of the cluster.
func SecretInformer(client kubernetes.Interface, indexers cache.Indexers, transform cache.TransformFunc) cache.SharedIndexInformer {
	api := client.CoreV1().Secrets("")
	return PagedInformer(func(ctx context.Context, opts metav1.ListOptions) ([]corev1.Secret, metav1.ListMeta, error) {
		l, err := api.List(ctx, opts)
		if err != nil {
			return nil, metav1.ListMeta{}, err
		}
		return l.Items, l.ListMeta, nil
	}, api.Watch, &corev1.Secret{}, 0, indexers, transform)
}

// pagedListWatch lists with list, a page at a time, each object turned into its entry (and
// dropped) before the next page is asked for. Every list it starts is a fresh, consistent
// one (resourceVersion ""), whatever version the informer asks for:
//   - the first list asks at "0" (any version will do), where the watch cache ignores the
//     page size and returns everything;
//   - a re-list after a broken watch asks in pages at the last version the informer saw, and
//     a paged list at a version is served from etcd at exactly that version: after an API
//     server restart the informer's watch from that version is refused as too old, it
//     re-lists the same old snapshot, and it stays blind to every change since until etcd
//     compacts the version (about 10 minutes).
//
// Later pages follow their continue token, which pins the first page's snapshot.
func pagedListWatch[O any](list func(context.Context, metav1.ListOptions) ([]O, metav1.ListMeta, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error), entry cache.TransformFunc) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			if opts.Continue == "" {
				opts.ResourceVersion, opts.ResourceVersionMatch = "", ""
			}
			items, meta, err := list(ctx, opts)
			if err != nil {
				return nil, err
			}
			page := &Page{ListMeta: meta, Items: make([]runtime.Object, len(items))}
			var none O
			for i := range items {
				e, err := entry(&items[i])
				if err != nil {
					return nil, err
				}
				if same, ok := e.(*O); ok && same == &items[i] {
					own := items[i] // an entry of its own, not a pointer into the page
					e = &own
				}
				page.Items[i], items[i] = e.(runtime.Object), none
			}
			return page, nil
		},
		WatchFuncWithContext: watchFn,
	}
}

// Page is one page of a list, as the informer's entries.
type Page struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []runtime.Object
}

func (p *Page) DeepCopyObject() runtime.Object {
	c := &Page{TypeMeta: p.TypeMeta, ListMeta: *p.ListMeta.DeepCopy(), Items: make([]runtime.Object, len(p.Items))}
	for i, item := range p.Items {
		c.Items[i] = item.DeepCopyObject()
	}
	return c
}
