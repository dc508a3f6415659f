package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// namespaceState reads the destination namespace of an application with
// CreateNamespace=true, once: whether it is missing, and whether its managed namespace
// metadata differs from spec.syncPolicy.managedNamespaceMetadata — a label or annotation
// missing or different, or one keyway applied that the spec no longer has (Argo CD keeps
// them in sync, not only at creation).
func (d *Daemon) namespaceState(ctx context.Context, a *v1alpha1.Application) (missing, stale bool) {
	name := a.Spec.Destination.Namespace
	if !a.Options().Has("CreateNamespace=true") || name == "" {
		return false, false
	}
	ns, err := d.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return true, false
	}
	labels, annotations := managedMetadata(a)
	ownLabels, ownAnnotations := appliedMetadata(ns)
	differs := func(want, have map[string]string, own map[string]bool) bool {
		for k, v := range want {
			if cur, ok := have[k]; !ok || cur != v {
				return true
			}
		}
		for k := range own {
			if _, ok := want[k]; !ok {
				return true
			}
		}
		return false
	}
	return false, differs(labels, ns.Labels, ownLabels) || differs(annotations, ns.Annotations, ownAnnotations)
}

// applyNamespace creates the destination namespace, or brings its managed metadata to
// what the application says, by server-side apply: labels and annotations keyway applied
// before and the spec no longer has are removed, others' are left alone.
func (d *Daemon) applyNamespace(ctx context.Context, a *v1alpha1.Application) error {
	labels, annotations := managedMetadata(a)
	ns := corev1ac.Namespace(a.Spec.Destination.Namespace)
	if len(labels) > 0 {
		ns.WithLabels(labels)
	}
	if len(annotations) > 0 {
		ns.WithAnnotations(annotations)
	}
	if _, err := d.kube.CoreV1().Namespaces().Apply(ctx, ns, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("applying namespace %s: %s", a.Spec.Destination.Namespace, redact.APIError(err))
	}
	d.m.writes.WithLabelValues("apply").Inc()
	return nil
}

func managedMetadata(a *v1alpha1.Application) (labels, annotations map[string]string) {
	if a.Spec.SyncPolicy == nil || a.Spec.SyncPolicy.ManagedNamespaceMetadata == nil {
		return nil, nil
	}
	m := a.Spec.SyncPolicy.ManagedNamespaceMetadata
	return maps.Clone(m.Labels), maps.Clone(m.Annotations)
}

// appliedMetadata is the labels and annotations keyway's field manager applied to ns.
func appliedMetadata(ns *corev1.Namespace) (labels, annotations map[string]bool) {
	labels, annotations = map[string]bool{}, map[string]bool{}
	for _, mf := range ns.ManagedFields {
		if mf.Manager != fieldManager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Metadata struct {
				Labels      map[string]any `json:"f:labels"`
				Annotations map[string]any `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		for k := range fields.Metadata.Labels {
			if name, ok := strings.CutPrefix(k, "f:"); ok {
				labels[name] = true
			}
		}
		for k := range fields.Metadata.Annotations {
			if name, ok := strings.CutPrefix(k, "f:"); ok {
				annotations[name] = true
			}
		}
	}
	return labels, annotations
}
