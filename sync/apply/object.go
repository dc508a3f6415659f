package apply

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// KindRank is a kind's place in that order.
func KindRank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// Object is one object to apply and what the caller knows about it.
type Object struct {
	Obj      *unstructured.Unstructured
	Wave     int
	Hook     []string   // the hook phases it runs in (the caller's names); empty for a resource
	Deletion []string   // when a hook's object is deleted (the caller's policy names)
	Source   string     // where it came from (file and document), for messages
	Respect  bool       // ignored fields keep their live values when applied
	Secrets  [][]string // fields whose values came from secret references: masked in diffs
	Recreate bool       // a change the API server refuses as immutable deletes and recreates it
}

// Key is the object's key.
func (it *Object) Key() Key { return KeyOf(it.Obj) }

// IsHook reports whether the object is a hook: created when its phase runs, never kept in
// an inventory.
func (it *Object) IsHook() bool { return len(it.Hook) > 0 }

// HookIn reports whether the object is a hook of phase.
func (it *Object) HookIn(phase string) bool { return slices.Contains(it.Hook, phase) }

// Sort orders objects by wave, then Argo CD's kind order, then namespace and name.
func Sort(items []*Object) {
	slices.SortStableFunc(items, func(a, b *Object) int {
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		if ka, kb := KindRank(a.Obj.GetKind()), KindRank(b.Obj.GetKind()); ka != kb {
			return ka - kb
		}
		if c := strings.Compare(a.Obj.GetKind(), b.Obj.GetKind()); c != 0 {
			return c
		}
		if c := strings.Compare(a.Obj.GetNamespace(), b.Obj.GetNamespace()); c != 0 {
			return c
		}
		return strings.Compare(a.Obj.GetName(), b.Obj.GetName())
	})
}

// Promote moves Namespaces and CRDs no later than the first wave that needs them: an
// object in a namespace, or a custom resource of a CRD, in an earlier wave.
func Promote(items []*Object) {
	nsWave := map[string]int{}
	crWave := map[string]int{}
	for _, it := range items {
		if ns := it.Obj.GetNamespace(); ns != "" {
			if w, ok := nsWave[ns]; !ok || it.Wave < w {
				nsWave[ns] = it.Wave
			}
		}
		gk := it.Obj.GroupVersionKind().GroupKind().String()
		if w, ok := crWave[gk]; !ok || it.Wave < w {
			crWave[gk] = it.Wave
		}
	}
	for _, it := range items {
		switch it.Obj.GetKind() {
		case "Namespace":
			if w, ok := nsWave[it.Obj.GetName()]; ok && w < it.Wave {
				it.Wave = w
			}
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(it.Obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(it.Obj.Object, "spec", "names", "kind")
			if w, ok := crWave[kind+"."+group]; ok && w < it.Wave {
				it.Wave = w
			}
		}
	}
}

// Waves groups sorted objects by wave.
func Waves(items []*Object) [][]*Object {
	var out [][]*Object
	for i, it := range items {
		if i == 0 || it.Wave != items[i-1].Wave {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], it)
	}
	return out
}
