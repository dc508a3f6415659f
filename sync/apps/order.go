package apps

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Argo CD's annotations.
const (
	AnnotationTracking    = "argocd.argoproj.io/tracking-id"
	AnnotationSyncWave    = "argocd.argoproj.io/sync-wave"
	AnnotationHook        = "argocd.argoproj.io/hook"
	AnnotationHookDelete  = "argocd.argoproj.io/hook-delete-policy"
	AnnotationSyncOptions = "argocd.argoproj.io/sync-options"
	AnnotationCompare     = "argocd.argoproj.io/compare-options"
)

// Hook phases, as Argo CD names them.
const (
	PhasePreSync  = "PreSync"
	PhaseSync     = "Sync"
	PhasePostSync = "PostSync"
	PhaseSyncFail = "SyncFail"
	hookSkip      = "Skip"
)

// deletePolicy reports whether the hook carries policy; BeforeHookCreation is Argo CD's
// default when a hook names none.
func deletePolicy(it *apply.Object, policy string) bool {
	if len(it.Deletion) == 0 {
		return policy == "BeforeHookCreation"
	}
	return slices.Contains(it.Deletion, policy)
}

// newItem reads an object's wave and hook annotations.
func newItem(u *unstructured.Unstructured, source string) (*apply.Object, error) {
	it := &apply.Object{Obj: u, Source: source}
	ann := u.GetAnnotations()
	// The wave: argocd.argoproj.io/sync-wave, else Helm's hook weight, as Argo CD reads them.
	for _, key := range []string{AnnotationSyncWave, "helm.sh/hook-weight"} {
		if w, ok := ann[key]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil {
				return nil, fmt.Errorf("%s: annotation %s %q is not a whole number", source, key, w)
			}
			it.Wave = n
			break
		}
	}
	for _, o := range strings.Split(ann[AnnotationSyncOptions], ",") {
		if err := v1alpha1.CheckSyncOption(fmt.Sprintf("%s: %s %s: annotation %s", source, u.GetKind(), u.GetName(), AnnotationSyncOptions), o); err != nil {
			return nil, err
		}
	}
	if h, ok := ann[AnnotationHook]; ok {
		for _, p := range strings.Split(h, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case PhasePreSync, PhaseSync, PhasePostSync, PhaseSyncFail, hookSkip:
				it.Hook = append(it.Hook, p)
			case "":
			default:
				return nil, fmt.Errorf("%s: annotation %s %q: want PreSync, Sync, PostSync, SyncFail or Skip", source, AnnotationHook, p)
			}
		}
	} else if h, ok := ann["helm.sh/hook"]; ok {
		// Helm's hooks, mapped as Argo CD maps them.
		for _, p := range strings.Split(h, ",") {
			switch strings.TrimSpace(p) {
			case "pre-install", "pre-upgrade":
				it.Hook = append(it.Hook, PhasePreSync)
			case "post-install", "post-upgrade":
				it.Hook = append(it.Hook, PhasePostSync)
			case "test", "test-success", "test-failure", "pre-delete", "post-delete", "pre-rollback", "post-rollback":
				it.Hook = append(it.Hook, hookSkip)
			}
		}
		if hp, ok := ann["helm.sh/hook-delete-policy"]; ok {
			for _, p := range strings.Split(hp, ",") {
				switch strings.TrimSpace(p) {
				case "hook-succeeded":
					it.Deletion = append(it.Deletion, "HookSucceeded")
				case "hook-failed":
					it.Deletion = append(it.Deletion, "HookFailed")
				case "before-hook-creation":
					it.Deletion = append(it.Deletion, "BeforeHookCreation")
				}
			}
		}
	}
	if p, ok := ann[AnnotationHookDelete]; ok {
		it.Deletion = nil
		for _, d := range strings.Split(p, ",") {
			d = strings.TrimSpace(d)
			switch d {
			case "HookSucceeded", "HookFailed", "BeforeHookCreation":
				it.Deletion = append(it.Deletion, d)
			case "":
			default:
				return nil, fmt.Errorf("%s: annotation %s %q: want HookSucceeded, HookFailed or BeforeHookCreation", source, AnnotationHookDelete, d)
			}
		}
	}
	return it, nil
}

// skipped reports whether the object is never applied (hook: Skip).
func skipped(it *apply.Object) bool { return slices.Contains(it.Hook, hookSkip) }

// resourceOption reports whether an object carries a sync option, such as Prune=false.
func resourceOption(u *unstructured.Unstructured, option string) bool {
	for _, o := range strings.Split(u.GetAnnotations()[AnnotationSyncOptions], ",") {
		if strings.EqualFold(strings.TrimSpace(o), option) {
			return true
		}
	}
	return false
}
