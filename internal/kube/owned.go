package kube

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// WatchOwned calls enqueue with its owner's key whenever an object controlled by an owner
// of kind (and, when apiVersion is set, that API version) is changed or deleted, so a
// controller puts back what someone edited by hand at once rather than at the next resync.
func WatchOwned(inf cache.SharedIndexInformer, apiVersion, kind string, enqueue func(key string)) {
	owner := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(m); ref != nil && ref.Kind == kind && (apiVersion == "" || ref.APIVersion == apiVersion) {
			enqueue(m.GetNamespace() + "/" + ref.Name)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(o, n any) {
			if o.(metav1.Object).GetResourceVersion() != n.(metav1.Object).GetResourceVersion() {
				owner(n)
			}
		},
		DeleteFunc: owner,
	})
}

// SameSecret tells whether writing b over a would change anything a controller manages:
// data, type, immutability, labels, annotations and owners. Empty and absent maps are
// equal, as the API server stores them.
func SameSecret(a, b *corev1.Secret) bool {
	return maps.EqualFunc(a.Data, b.Data, bytes.Equal) && a.Type == b.Type &&
		equality.Semantic.DeepEqual(a.Immutable, b.Immutable) &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}
