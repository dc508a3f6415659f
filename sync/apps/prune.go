package apps

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// prune deletes the objects that left git: only those whose tracking annotation still
// names this application, not those marked Prune=false, and those marked Prune=confirm
// only when the operator confirmed this revision. It returns how many it deleted and the
// keys it left in place on purpose (kept in the inventory).
func (d *Daemon) prune(ctx context.Context, a *v1alpha1.Application, keys []apply.Key, on, confirmed bool) (int, []apply.Key, error) {
	if !on || len(keys) == 0 {
		return 0, nil, nil
	}
	// Background by default: the object goes at once and the garbage collector removes
	// its dependents. (Argo CD's default, foreground, keeps a pruned object until every
	// dependent is gone; PrunePropagationPolicy=foreground asks for that.)
	policy := metav1.DeletePropagationBackground
	switch strings.ToLower(a.Options().Value("PrunePropagationPolicy")) {
	case "foreground":
		policy = metav1.DeletePropagationForeground
	case "orphan":
		policy = metav1.DeletePropagationOrphan
	}
	pruned := 0
	var kept []apply.Key
	for _, k := range keys {
		n, keep, err := d.eng.Delete(ctx, owner(a.Name), k, policy, pruneKeep(confirmed))
		if err != nil {
			return pruned, kept, err
		}
		pruned += n
		if keep {
			kept = append(kept, k)
		}
	}
	return pruned, kept, nil
}

// pruneKeep is what prune leaves in place: objects marked Prune=false or Helm's
// helm.sh/resource-policy: keep, and those marked Prune=confirm unless the operator
// confirmed this revision.
func pruneKeep(confirmed bool) func(*unstructured.Unstructured) bool {
	return func(live *unstructured.Unstructured) bool {
		return resourceOption(live, "Prune=false") || helmKeep(live) || (resourceOption(live, "Prune=confirm") && !confirmed)
	}
}

// deleteKeep is what deleting an application leaves in place: what prune keeps, objects
// marked Delete=false, and CustomResourceDefinitions — deleting one deletes every custom
// resource of its kind, whoever made them.
func deleteKeep(live *unstructured.Unstructured) bool {
	return pruneKeep(true)(live) || resourceOption(live, "Delete=false") ||
		(live.GetKind() == "CustomResourceDefinition" && strings.HasPrefix(live.GetAPIVersion(), "apiextensions.k8s.io/"))
}

// helmKeep reports Helm's helm.sh/resource-policy: keep.
func helmKeep(live *unstructured.Unstructured) bool {
	return strings.TrimSpace(live.GetAnnotations()["helm.sh/resource-policy"]) == "keep"
}

// removeChild handles a child application that left its parent's render: with
// resources-finalizer.argocd.argoproj.io its objects (and its children's) are deleted,
// otherwise they stay, orphaned, as in Argo CD. Its inventory goes either way. Only the
// parent that made the child (recorded in its inventory) may remove it.
func (d *Daemon) removeChild(ctx context.Context, parent, name string, preserve bool) error {
	inv, err := d.readInventory(ctx, name)
	if err != nil {
		return err
	}
	if !inv.exists {
		return nil
	}
	if inv.Parent != "" && inv.Parent != parent {
		return fmt.Errorf("application %s belongs to %s, not %s: not removed", name, inv.Parent, parent)
	}
	if inv.Finalizer && !preserve {
		for _, c := range inv.Children {
			if err := d.removeChild(ctx, name, c, false); err != nil {
				return err
			}
		}
		tgt, err := d.byServer(ctx, inv.Cluster)
		if err != nil {
			return fmt.Errorf("removing application %s: %w", name, err)
		}
		for _, k := range inv.Entries {
			if _, _, err := tgt.eng.Delete(ctx, owner(name), k, metav1.DeletePropagationBackground, deleteKeep); err != nil {
				return err
			}
		}
	}
	if err := d.deleteInventory(ctx, name); err != nil {
		return fmt.Errorf("deleting the inventory of %s: %s", name, redact.APIError(err))
	}
	d.mu.Lock()
	delete(d.apps, name)
	delete(d.status, name)
	d.mu.Unlock()
	d.log.Info("child application removed", "app", name, "resources-deleted", inv.Finalizer)
	return nil
}
