package apps

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

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

// kindOrder is Argo CD's apply order within a wave; kinds not listed follow, by name.
var kindOrder = []string{
	"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget",
	"ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
	"PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

func kindRank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// item is one rendered object and what the sync knows about it.
type item struct {
	obj      *unstructured.Unstructured
	wave     int
	hook     []string   // hook phases; empty for a resource
	deletion []string   // hook-delete-policy
	source   string     // where it came from (file and document), for messages
	respect  bool       // RespectIgnoreDifferences=true: ignored fields keep their live values
	secrets  [][]string // fields whose values came from secret references: masked in diffs
}

func (it *item) key() objKey { return keyOf(it.obj) }

func (it *item) isHook() bool { return len(it.hook) > 0 }

// hookIn reports whether the item is a hook of phase.
func (it *item) hookIn(phase string) bool { return slices.Contains(it.hook, phase) }

// deletePolicy reports whether the hook carries policy; BeforeHookCreation is Argo CD's
// default when a hook names none.
func (it *item) deletePolicy(policy string) bool {
	if len(it.deletion) == 0 {
		return policy == "BeforeHookCreation"
	}
	return slices.Contains(it.deletion, policy)
}

// newItem reads an object's wave and hook annotations.
func newItem(u *unstructured.Unstructured, source string) (*item, error) {
	it := &item{obj: u, source: source}
	ann := u.GetAnnotations()
	if w, ok := ann[AnnotationSyncWave]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			return nil, fmt.Errorf("%s: annotation %s %q is not a whole number", source, AnnotationSyncWave, w)
		}
		it.wave = n
	}
	if h, ok := ann[AnnotationHook]; ok {
		for _, p := range strings.Split(h, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case PhasePreSync, PhaseSync, PhasePostSync, PhaseSyncFail, hookSkip:
				it.hook = append(it.hook, p)
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
				it.hook = append(it.hook, PhasePreSync)
			case "post-install", "post-upgrade":
				it.hook = append(it.hook, PhasePostSync)
			case "test", "test-success", "test-failure", "pre-delete", "post-delete", "pre-rollback", "post-rollback":
				it.hook = append(it.hook, hookSkip)
			}
		}
		if hp, ok := ann["helm.sh/hook-delete-policy"]; ok {
			for _, p := range strings.Split(hp, ",") {
				switch strings.TrimSpace(p) {
				case "hook-succeeded":
					it.deletion = append(it.deletion, "HookSucceeded")
				case "hook-failed":
					it.deletion = append(it.deletion, "HookFailed")
				case "before-hook-creation":
					it.deletion = append(it.deletion, "BeforeHookCreation")
				}
			}
		}
	}
	if p, ok := ann[AnnotationHookDelete]; ok {
		it.deletion = nil
		for _, d := range strings.Split(p, ",") {
			d = strings.TrimSpace(d)
			switch d {
			case "HookSucceeded", "HookFailed", "BeforeHookCreation":
				it.deletion = append(it.deletion, d)
			case "":
			default:
				return nil, fmt.Errorf("%s: annotation %s %q: want HookSucceeded, HookFailed or BeforeHookCreation", source, AnnotationHookDelete, d)
			}
		}
	}
	return it, nil
}

// skipped reports whether the object is never applied (hook: Skip).
func (it *item) skipped() bool { return slices.Contains(it.hook, hookSkip) }

// resourceOption reports whether an object carries a sync option, such as Prune=false.
func resourceOption(u *unstructured.Unstructured, option string) bool {
	for _, o := range strings.Split(u.GetAnnotations()[AnnotationSyncOptions], ",") {
		if strings.EqualFold(strings.TrimSpace(o), option) {
			return true
		}
	}
	return false
}

// sortItems orders items by wave, then Argo CD's kind order, then namespace and name.
func sortItems(items []*item) {
	slices.SortStableFunc(items, func(a, b *item) int {
		if a.wave != b.wave {
			return a.wave - b.wave
		}
		if ka, kb := kindRank(a.obj.GetKind()), kindRank(b.obj.GetKind()); ka != kb {
			return ka - kb
		}
		if c := strings.Compare(a.obj.GetKind(), b.obj.GetKind()); c != 0 {
			return c
		}
		if c := strings.Compare(a.obj.GetNamespace(), b.obj.GetNamespace()); c != 0 {
			return c
		}
		return strings.Compare(a.obj.GetName(), b.obj.GetName())
	})
}

// promote moves Namespaces and CRDs no later than the first wave that needs them: an
// object in a namespace, or a custom resource of a CRD, in an earlier wave.
func promote(items []*item) {
	nsWave := map[string]int{}
	crWave := map[string]int{}
	for _, it := range items {
		if ns := it.obj.GetNamespace(); ns != "" {
			if w, ok := nsWave[ns]; !ok || it.wave < w {
				nsWave[ns] = it.wave
			}
		}
		gk := it.obj.GroupVersionKind().GroupKind().String()
		if w, ok := crWave[gk]; !ok || it.wave < w {
			crWave[gk] = it.wave
		}
	}
	for _, it := range items {
		switch it.obj.GetKind() {
		case "Namespace":
			if w, ok := nsWave[it.obj.GetName()]; ok && w < it.wave {
				it.wave = w
			}
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "kind")
			if w, ok := crWave[kind+"."+group]; ok && w < it.wave {
				it.wave = w
			}
		}
	}
}

// waves groups sorted items by wave.
func waves(items []*item) [][]*item {
	var out [][]*item
	for i, it := range items {
		if i == 0 || it.wave != items[i-1].wave {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], it)
	}
	return out
}
