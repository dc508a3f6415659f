package kube

import (
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
