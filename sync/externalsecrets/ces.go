package externalsecrets

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// ClusterExternalSecretGVR is ESO's ClusterExternalSecret.
var ClusterExternalSecretGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clusterexternalsecrets"}

// cesPrefix marks a ClusterExternalSecret's key in the work queue.
const cesPrefix = "ces:"

// cesRefresh is how often a ClusterExternalSecret's namespaces are looked at again when it
// sets no refreshTime (namespace changes are watched besides).
const cesRefresh = time.Hour

// cesServed reports whether the cluster serves ClusterExternalSecrets (keyway's CRDs from
// this version on, or ESO's).
func cesServed(kube kubernetes.Interface) bool {
	list, err := kube.Discovery().ServerResourcesForGroupVersion(ClusterExternalSecretGVR.GroupVersion().String())
	if err != nil {
		return false
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == ClusterExternalSecretGVR.Resource })
}

// watchCES sets up the ClusterExternalSecret and Namespace informers: a
// ClusterExternalSecret is reconciled when it changes or is deleted, when a namespace
// appears or its labels change, and when an ExternalSecret it made is deleted.
func (s *Syncer) watchCES(kube kubernetes.Interface) {
	s.cesInf = s.factory.ForResource(ClusterExternalSecretGVR).Informer()
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if m, ok := obj.(metav1.Object); ok {
			s.queue.Add(cesPrefix+m.GetName(), ctl.High)
		}
	}
	_, _ = s.cesInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
		DeleteFunc: enqueue,
	})
	all := func() {
		for _, obj := range s.cesInf.GetStore().List() {
			enqueue(obj)
		}
	}
	s.nsFactory = informers.NewSharedInformerFactory(kube, 0)
	nsInf := s.nsFactory.Core().V1().Namespaces()
	s.namespaces = nsInf.Lister()
	_, _ = nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { all() },
		UpdateFunc: func(o, n any) {
			if !maps.Equal(o.(*corev1.Namespace).Labels, n.(*corev1.Namespace).Labels) {
				all()
			}
		},
	})
	_, _ = s.esInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if m, ok := obj.(metav1.Object); ok {
				if ref := metav1.GetControllerOf(m); ref != nil && ref.Kind == "ClusterExternalSecret" {
					s.queue.Add(cesPrefix+ref.Name, ctl.High)
				}
			}
		},
	})
	s.cesSynced = []cache.InformerSynced{s.cesInf.HasSynced, nsInf.Informer().HasSynced}
}

// reconcileCES makes the ClusterExternalSecret's ExternalSecret in every namespace it
// selects, as ESO does: one named externalSecretName (the ClusterExternalSecret's name by
// default), its spec, the metadata's labels and annotations (and force-sync), controlled
// by the ClusterExternalSecret. A namespace holding an ExternalSecret of that name that it
// does not control fails; one no longer selected loses the one it made; so does every
// namespace when the ClusterExternalSecret is deleted. The status lists provisioned and
// failed namespaces, with Ready.
func (s *Syncer) reconcileCES(ctx context.Context, name string) (time.Duration, error) {
	item, exists, err := s.cesInf.GetStore().GetByKey(name)
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, s.removeCESChildren(ctx, name, "", nil)
	}
	u := item.(*unstructured.Unstructured)
	var ces esv1.ClusterExternalSecret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ces); err != nil {
		return 0, s.cesStatus(ctx, u, esv1.ClusterExternalSecretStatus{}, fmt.Sprintf("the ClusterExternalSecret is malformed: %v", err))
	}
	if err := esv1.ClusterExternalSecretFields.Check(u.Object); err != nil {
		return 0, s.cesStatus(ctx, u, ces.Status, err.Error())
	}
	esName := ces.Spec.ExternalSecretName
	if esName == "" {
		esName = ces.Name
	}
	targets, err := s.cesTargets(&ces)
	if err != nil {
		return 0, s.cesStatus(ctx, u, ces.Status, err.Error())
	}
	// Those it made that are no longer wanted: other namespaces, or the old name.
	if err := s.removeCESChildren(ctx, name, esName, targets); err != nil {
		return 0, err
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec", "externalSecretSpec")
	st := esv1.ClusterExternalSecretStatus{ExternalSecretName: esName}
	for _, ns := range slices.Sorted(maps.Keys(targets)) {
		if err := s.applyCESChild(ctx, u, &ces, ns, esName, spec); err != nil {
			st.FailedNamespaces = append(st.FailedNamespaces, esv1.ClusterExternalSecretNamespaceFailure{Namespace: ns, Reason: err.Error()})
			continue
		}
		st.ProvisionedNamespaces = append(st.ProvisionedNamespaces, ns)
	}
	msg := ""
	if len(st.FailedNamespaces) > 0 {
		msg = "one or more namespaces failed"
	}
	if err := s.cesStatus(ctx, u, st, msg); err != nil {
		return 0, err
	}
	if ces.Spec.RefreshInterval != nil && ces.Spec.RefreshInterval.Duration > 0 {
		return ces.Spec.RefreshInterval.Duration, nil
	}
	return cesRefresh, nil
}

// cesTargets is the set of live namespaces the ClusterExternalSecret names or selects.
func (s *Syncer) cesTargets(ces *esv1.ClusterExternalSecret) (map[string]bool, error) {
	var selectors []labels.Selector
	for i, ls := range append([]*metav1.LabelSelector{ces.Spec.NamespaceSelector}, ces.Spec.NamespaceSelectors...) {
		if ls == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return nil, fmt.Errorf("namespace selector %d: %v", i, err)
		}
		selectors = append(selectors, sel)
	}
	all, err := s.namespaces.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ns := range all {
		if ns.DeletionTimestamp != nil {
			continue
		}
		if slices.Contains(ces.Spec.Namespaces, ns.Name) || slices.ContainsFunc(selectors, func(sel labels.Selector) bool { return sel.Matches(labels.Set(ns.Labels)) }) {
			out[ns.Name] = true
		}
	}
	return out, nil
}

// applyCESChild creates or updates the ExternalSecret in ns.
func (s *Syncer) applyCESChild(ctx context.Context, u *unstructured.Unstructured, ces *esv1.ClusterExternalSecret, ns, name string, spec map[string]any) error {
	api := s.dyn.Resource(ExternalSecretGVR).Namespace(ns)
	annotations := maps.Clone(ces.Spec.ExternalSecretMetadata.Annotations)
	if v, ok := ces.Annotations["force-sync"]; ok {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations["force-sync"] = v
	}
	yes := true
	ref := metav1.OwnerReference{APIVersion: esv1.GroupVersion.String(), Kind: "ClusterExternalSecret", Name: ces.Name, UID: ces.UID, Controller: &yes, BlockOwnerDeletion: &yes}
	existing, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		es := &unstructured.Unstructured{Object: map[string]any{"apiVersion": ExternalSecretGVR.GroupVersion().String(), "kind": "ExternalSecret", "spec": spec}}
		es.SetName(name)
		es.SetNamespace(ns)
		es.SetLabels(ces.Spec.ExternalSecretMetadata.Labels)
		es.SetAnnotations(annotations)
		es.SetOwnerReferences([]metav1.OwnerReference{ref})
		if _, err := api.Create(ctx, es, metav1.CreateOptions{FieldManager: "keyway-syncer"}); err != nil {
			return fmt.Errorf("creating the ExternalSecret: %s", redact.APIError(err))
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading the ExternalSecret: %s", redact.APIError(err))
	}
	if owner := metav1.GetControllerOf(existing); owner == nil || owner.Kind != "ClusterExternalSecret" || owner.Name != ces.Name {
		return fmt.Errorf("external secret already exists in namespace")
	}
	upd := existing.DeepCopy()
	upd.Object["spec"] = spec
	upd.SetLabels(ces.Spec.ExternalSecretMetadata.Labels)
	upd.SetAnnotations(annotations)
	upd.SetOwnerReferences([]metav1.OwnerReference{ref})
	if equality.Semantic.DeepEqual(existing.Object["spec"], upd.Object["spec"]) && maps.Equal(existing.GetLabels(), upd.GetLabels()) &&
		maps.Equal(existing.GetAnnotations(), upd.GetAnnotations()) && equality.Semantic.DeepEqual(existing.GetOwnerReferences(), upd.GetOwnerReferences()) {
		return nil
	}
	if _, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: "keyway-syncer"}); err != nil {
		return fmt.Errorf("updating the ExternalSecret: %s", redact.APIError(err))
	}
	return nil
}

// removeCESChildren deletes the ExternalSecrets the named ClusterExternalSecret controls,
// but the one called keep in each namespace of keepIn.
func (s *Syncer) removeCESChildren(ctx context.Context, ces, keep string, keepIn map[string]bool) error {
	for _, obj := range s.esInf.GetStore().List() {
		m := obj.(metav1.Object)
		ref := metav1.GetControllerOf(m)
		if ref == nil || ref.Kind != "ClusterExternalSecret" || ref.Name != ces || (m.GetName() == keep && keepIn[m.GetNamespace()]) {
			continue
		}
		uid := m.GetUID()
		err := s.dyn.Resource(ExternalSecretGVR).Namespace(m.GetNamespace()).Delete(ctx, m.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting ExternalSecret %s/%s: %s", m.GetNamespace(), m.GetName(), redact.APIError(err))
		}
	}
	return nil
}

// cesStatus writes the status, with Ready False and msg when msg is set.
func (s *Syncer) cesStatus(ctx context.Context, u *unstructured.Unstructured, st esv1.ClusterExternalSecretStatus, msg string) error {
	cond := esv1.ClusterExternalSecretStatusCondition{Type: "Ready", Status: string(corev1.ConditionTrue)}
	if msg != "" {
		cond = esv1.ClusterExternalSecretStatusCondition{Type: "Ready", Status: string(corev1.ConditionFalse), Message: msg}
	}
	st.Conditions = []esv1.ClusterExternalSecretStatusCondition{cond}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(u.Object["status"], status) {
		return nil
	}
	upd := u.DeepCopy()
	upd.Object["status"] = status
	_, err = s.dyn.Resource(ClusterExternalSecretGVR).UpdateStatus(ctx, upd, metav1.UpdateOptions{FieldManager: "keyway-syncer"})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("ClusterExternalSecret %s status: %s", u.GetName(), redact.APIError(err))
	}
	return nil
}

// cesKey reports whether key is a ClusterExternalSecret's, and its name.
func cesKey(key string) (string, bool) { return strings.CutPrefix(key, cesPrefix) }
