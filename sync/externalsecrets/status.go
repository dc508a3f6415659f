package externalsecrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/providers"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// fail records a failure: a Warning event and Ready=False when that is news. Messages name
// objects, keys and reasons, never values.
func (s *Syncer) fail(ctx context.Context, u *unstructured.Unstructured, err error) error {
	msg := err.Error()
	s.syncs.WithLabelValues("error").Inc()
	s.errs.WithLabelValues(errorReason(err)).Inc()
	if readyIs(u, corev1.ConditionFalse, esv1.ReasonSecretSyncedError, msg) {
		return nil
	}
	s.rec.Event(u, corev1.EventTypeWarning, esv1.ReasonSecretSyncedError, msg)
	s.log.Warn("sync failed", "externalsecret", u.GetNamespace()+"/"+u.GetName(), "message", msg)
	return s.setReady(ctx, u, corev1.ConditionFalse, esv1.ReasonSecretSyncedError, msg)
}

// errorReason is a failed sync's metric label: what kind of problem, never its text.
func errorReason(err error) string {
	var r refusal
	switch {
	case errors.As(err, &r):
		return "config"
	case errors.Is(err, providers.ErrNotFound):
		return "not-found"
	case errors.Is(err, providers.ErrPermissionDenied):
		return "permission-denied"
	case errors.Is(err, providers.ErrUnavailable), errors.Is(err, errBackendDown):
		return "backend-unavailable"
	}
	return "other"
}

func readyIs(u *unstructured.Unstructured, status corev1.ConditionStatus, reason, msg string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == string(esv1.ExternalSecretReady) {
			return m["status"] == string(status) && m["reason"] == reason && m["message"] == msg
		}
	}
	return false
}

// setReady writes the Ready condition, refreshTime, syncedResourceVersion and binding.
func (s *Syncer) setReady(ctx context.Context, u *unstructured.Unstructured, status corev1.ConditionStatus, reason, msg string) error {
	cur := u.DeepCopy()
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := map[string]any{"type": string(esv1.ExternalSecretReady), "status": string(status), "reason": reason, "message": msg, "lastTransitionTime": now}
	if readyIs(u, status, reason, msg) {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == string(esv1.ExternalSecretReady) {
				cond["lastTransitionTime"] = m["lastTransitionTime"]
			}
		}
	}
	_ = unstructured.SetNestedSlice(cur.Object, []any{cond}, "status", "conditions")
	_ = unstructured.SetNestedField(cur.Object, now, "status", "refreshTime")
	_ = unstructured.SetNestedField(cur.Object, fmt.Sprintf("%d", u.GetGeneration()), "status", "syncedResourceVersion")
	if status == corev1.ConditionTrue {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "target", "name")
		if name == "" {
			name = u.GetName()
		}
		_ = unstructured.SetNestedField(cur.Object, map[string]any{"name": name}, "status", "binding")
	}
	_, err := s.dyn.Resource(ExternalSecretGVR).Namespace(cur.GetNamespace()).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err // a conflict is retried with the informer's newer copy
}
