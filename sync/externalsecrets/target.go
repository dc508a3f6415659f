package externalsecrets

import (
	"context"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

func ownedByExternalSecret(sc *corev1.Secret) bool {
	for _, ref := range sc.OwnerReferences {
		if ref.Kind == "ExternalSecret" && strings.HasPrefix(ref.APIVersion, esv1.GroupVersion.Group+"/") {
			return true
		}
	}
	return false
}

func targetName(es *esv1.ExternalSecret) string {
	if es.Spec.Target.Name != "" {
		return es.Spec.Target.Name
	}
	return es.Name
}

// writeTarget creates or updates the target Secret as the creation policy says, writing
// only when something differs.
func (s *Syncer) writeTarget(ctx context.Context, u *unstructured.Unstructured, es *esv1.ExternalSecret, values map[string][]byte) error {
	data, typ, meta, err := render(ctx, es, values, func(kind, name string) (map[string]string, error) {
		if kind == "ConfigMap" {
			cm, err := s.kube.CoreV1().ConfigMaps(es.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, errors.New(redact.APIOutcome(err))
			}
			return cm.Data, nil
		}
		sec, err := s.kube.CoreV1().Secrets(es.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, errors.New(redact.APIOutcome(err))
		}
		out := map[string]string{}
		for k, v := range sec.Data {
			out[k] = string(v)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	name := targetName(es)
	policy := es.Spec.Target.CreationPolicy
	if policy == "" {
		policy = esv1.CreatePolicyOwner
	}
	if policy == esv1.CreatePolicyNone {
		return nil
	}
	api := s.kube.CoreV1().Secrets(es.Namespace)
	existing, err := s.secrets.Secrets(es.Namespace).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !ownedByExternalSecret(existing) && existing.Annotations[AnnotationAdopt] != "true") {
		// The cache may lag a create, and keeps only the metadata of Secrets that are not
		// targets: read the real thing before merging into it or refusing it.
		existing, err = api.Get(ctx, name, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		if policy == esv1.CreatePolicyMerge {
			return refusal{fmt.Sprintf("target Secret %s/%s does not exist (creationPolicy Merge)", es.Namespace, name)}
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: es.Namespace, Labels: meta.Labels, Annotations: meta.Annotations}, Type: typ, Data: data}
		bookkeeping(sec, es, policy)
		if es.Spec.Target.Immutable {
			yes := true
			sec.Immutable = &yes
		}
		if policy == esv1.CreatePolicyOwner {
			sec.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(u, esv1.GroupVersion.WithKind("ExternalSecret"))}
		}
		if policy == esv1.CreatePolicyOrphan {
			if sec.Annotations == nil {
				sec.Annotations = map[string]string{}
			}
			sec.Annotations[AnnotationCreatedBy] = string(u.GetUID())
		}
		if _, err := api.Create(ctx, sec, metav1.CreateOptions{FieldManager: "keyway-syncer"}); err != nil {
			return err
		}
		s.rec.Event(u, corev1.EventTypeNormal, esv1.ReasonCreated, "secret created")
		return nil
	case err != nil:
		return err
	}
	if owner := metav1.GetControllerOf(existing); owner != nil && owner.UID != u.GetUID() && policy != esv1.CreatePolicyOwner {
		return refusal{fmt.Sprintf("Secret %s/%s is controlled by %s %s; creationPolicy %s never writes a Secret another controller owns", es.Namespace, name, owner.Kind, owner.Name, policy)}
	}
	upd := existing.DeepCopy()
	switch policy {
	case esv1.CreatePolicyOwner:
		if !metav1.IsControlledBy(existing, u) && existing.Annotations[AnnotationAdopt] != "true" {
			return refusal{fmt.Sprintf("Secret %s/%s exists and is not owned by this ExternalSecret; annotate it %s: \"true\" to let keyway take it over", es.Namespace, name, AnnotationAdopt)}
		}
		upd.Data, upd.Type, upd.Labels = data, typ, meta.Labels
		upd.Annotations = maps.Clone(meta.Annotations)
		if v, ok := existing.Annotations[AnnotationAdopt]; ok {
			if upd.Annotations == nil {
				upd.Annotations = map[string]string{}
			}
			upd.Annotations[AnnotationAdopt] = v
		}
		upd.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(u, esv1.GroupVersion.WithKind("ExternalSecret"))}
	case esv1.CreatePolicyOrphan:
		if existing.Annotations[AnnotationCreatedBy] != string(u.GetUID()) && existing.Annotations[AnnotationAdopt] != "true" {
			return refusal{fmt.Sprintf("Secret %s/%s exists and was not created by this ExternalSecret (creationPolicy Orphan does not take Secrets over); annotate it %s: \"true\" to let keyway write it", es.Namespace, name, AnnotationAdopt)}
		}
		upd.Data, upd.Type = data, typ
	case esv1.CreatePolicyMerge:
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		maps.Copy(upd.Data, data)
	}
	bookkeeping(upd, es, policy)
	if ctl.SameSecret(existing, upd) {
		return nil
	}
	if _, err = api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: "keyway-syncer"}); err != nil {
		return err
	}
	s.rec.Event(u, corev1.EventTypeNormal, esv1.ReasonUpdated, "secret updated")
	return nil
}

// deleteTarget applies deletionPolicy Delete once every remote secret is gone: the target
// Secret is deleted (only if this ExternalSecret owns it) and Ready says so.
func (s *Syncer) deleteTarget(ctx context.Context, u *unstructured.Unstructured, es *esv1.ExternalSecret) error {
	name := targetName(es)
	sec, err := s.kube.CoreV1().Secrets(es.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case metav1.IsControlledBy(sec, u):
		if err := s.kube.CoreV1().Secrets(es.Namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		s.rec.Eventf(u, corev1.EventTypeNormal, esv1.ReasonSecretDeleted, "every remote secret is gone: Secret %s deleted (deletionPolicy Delete)", name)
	}
	msg := "every remote secret is gone; the target Secret was deleted (deletionPolicy Delete)"
	if readyIs(u, corev1.ConditionFalse, esv1.ReasonSecretDeleted, msg) {
		return nil
	}
	return s.setReady(ctx, u, corev1.ConditionFalse, esv1.ReasonSecretDeleted, msg)
}

// ESO's bookkeeping on target Secrets (ESO v1.x), so dashboards and tools that read it
// work unchanged.
const (
	LabelManaged       = "reconcile.external-secrets.io/managed"
	LabelOwner         = "reconcile.external-secrets.io/created-by"
	AnnotationDataHash = "reconcile.external-secrets.io/data-hash"
)

// bookkeeping marks a target Secret as ESO v1.x does: the managed label, the owner label
// (creationPolicy Owner only: a hash of the ExternalSecret's namespace/name) and the hash
// of its data — ESO's ObjectHash, SHA3-224 of the value as Go's %+v prints it.
func bookkeeping(sec *corev1.Secret, es *esv1.ExternalSecret, policy esv1.ExternalSecretCreationPolicy) {
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Labels[LabelManaged] = "true"
	if policy == esv1.CreatePolicyOwner {
		sec.Labels[LabelOwner] = objectHash(es.Namespace + "/" + es.Name)
	} else {
		delete(sec.Labels, LabelOwner)
	}
	sec.Annotations[AnnotationDataHash] = objectHash(sec.Data)
}

func objectHash(v any) string {
	sum := sha3.Sum224([]byte(fmt.Sprintf("%+v", v)))
	return hex.EncodeToString(sum[:])
}
