package apply

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"

	"github.com/keyway-dev/keyway/internal/redact"
)

// Objects last written by client-side apply (kubectl apply, Argo CD's default sync) have
// their fields owned by an Update manager. Server-side apply as keyway never removes a field
// another manager owns, so a field deleted from git would stay for ever. Before the first
// apply, the fields of Cluster.HandOver's managers are handed to keyway's field manager
// (client-go's csaupgrade, as Flux's ResourceManager does): from then on, what leaves git
// leaves the object.

// needsHandOver reports whether one of the hand-over managers owns fields of live through
// client-side apply.
func (c *Cluster) needsHandOver(live *unstructured.Unstructured) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Operation == metav1.ManagedFieldsOperationUpdate && mf.Subresource == "" && slices.Contains(c.HandOver, mf.Manager) {
			return true
		}
	}
	return false
}

// handOver moves the hand-over managers' fields of p's live object to keyway's manager: a
// JSON patch of managedFields, conditional on the resourceVersion it was computed from.
func (c *Cluster) handOver(ctx context.Context, p *Planned) error {
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(p.Live, sets.New(c.HandOver...), c.FieldManager)
	if err != nil || patch == nil {
		return err
	}
	if _, err := c.Resource(p.Mapping, p.Obj.GetNamespace()).Patch(ctx, p.Obj.GetName(), types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("%s: handing %s over from client-side apply: %s", p.Source, p.Key(), redact.APIError(err))
	}
	c.wrote("handover", nil)
	return nil
}
