package apps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/keyway-dev/keyway/sync/apply"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trackingID is Argo CD's annotation tracking value: <app>:<group>/<kind>:<namespace>/<name>.
func trackingID(app string, k apply.Key) string {
	return app + ":" + k.Group + "/" + k.Kind + ":" + k.Namespace + "/" + k.Name
}

// Inventory ConfigMap keys and annotations.
const (
	inventoryPrefix    = "keyway-app-"
	setInventoryPrefix = "keyway-appset-"
	dataParent         = "parent"
	dataEntries        = "entries"
	dataChildren       = "children"
	dataRevision       = "revision"
	dataSource         = "source"
	dataSecrets        = "secrets"
	dataFinalizer      = "resources-finalizer"
	dataCluster        = "cluster"
	labelInventory     = "keyway.dev/inventory"
	AnnotationConfirm  = "keyway.dev/confirm-prune"
)

// inventory is what an application applied last: object references only, never content.
type inventory struct {
	Entries   []apply.Key
	Children  []string
	Revision  string
	Source    string // a hash of the Application's spec the revision was synced with
	Secrets   string // an HMAC of what the render's secrets read (the checksum key's)
	Finalizer bool   // the application carried resources-finalizer.argocd.argoproj.io
	Cluster   string // the destination server ("" for the daemon's own cluster)
	Parent    string // the parent application or ApplicationSet key ("" for a root)
	Confirm   string
	exists    bool
	data      map[string]string // as read, to write only on change
}

// inventoryName is the ConfigMap of an application's inventory, or of an ApplicationSet's
// (setKey): the two kinds have prefixes no name can make equal.
func inventoryName(key string) string {
	if set, ok := strings.CutPrefix(key, setKeyPrefix); ok {
		return setInventoryPrefix + set
	}
	return inventoryPrefix + key
}

func (d *Daemon) readInventory(ctx context.Context, app string) (*inventory, error) {
	cm, err := d.hub.kube.CoreV1().ConfigMaps(d.o.StateNamespace).Get(ctx, inventoryName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &inventory{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the inventory of %s: %w", app, err)
	}
	inv := &inventory{exists: true, data: cm.Data, Revision: cm.Data[dataRevision], Source: cm.Data[dataSource], Secrets: cm.Data[dataSecrets], Finalizer: cm.Data[dataFinalizer] == "true", Cluster: cm.Data[dataCluster], Parent: cm.Data[dataParent],
		Confirm: cm.Annotations[AnnotationConfirm]}
	for _, line := range strings.Split(cm.Data[dataEntries], "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, err := apply.ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %w", d.o.StateNamespace, cm.Name, err)
		}
		inv.Entries = append(inv.Entries, k)
	}
	for _, c := range strings.Split(cm.Data[dataChildren], "\n") {
		if c = strings.TrimSpace(c); c != "" {
			inv.Children = append(inv.Children, c)
		}
	}
	return inv, nil
}

// writeInventory stores inv, writing nothing when it is unchanged.
func (d *Daemon) writeInventory(ctx context.Context, app string, inv *inventory) error {
	lines := make([]string, 0, len(inv.Entries))
	for _, k := range inv.Entries {
		lines = append(lines, k.String())
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	children := slices.Clone(inv.Children)
	slices.Sort(children)
	data := map[string]string{dataEntries: strings.Join(lines, "\n"), dataRevision: inv.Revision}
	if len(children) > 0 {
		data[dataChildren] = strings.Join(children, "\n")
	}
	if inv.Finalizer {
		data[dataFinalizer] = "true"
	}
	if inv.Source != "" {
		data[dataSource] = inv.Source
	}
	if inv.Secrets != "" {
		data[dataSecrets] = inv.Secrets
	}
	if inv.Cluster != "" {
		data[dataCluster] = inv.Cluster
	}
	if inv.Parent != "" {
		data[dataParent] = inv.Parent
	}
	if inv.exists && maps.Equal(inv.data, data) {
		return nil
	}
	cms := d.hub.kube.CoreV1().ConfigMaps(d.o.StateNamespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: inventoryName(app), Namespace: d.o.StateNamespace,
		Labels: map[string]string{labelInventory: "true", "app.kubernetes.io/managed-by": "keyway"}}, Data: data}
	var err error
	if inv.exists {
		cur, gerr := cms.Get(ctx, cm.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("writing the inventory of %s: %w", app, gerr)
		}
		cur.Data = data
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager})
	} else {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		return fmt.Errorf("writing the inventory of %s: %w", app, err)
	}
	inv.exists, inv.data = true, data
	return nil
}

func (d *Daemon) deleteInventory(ctx context.Context, app string) error {
	err := d.hub.kube.CoreV1().ConfigMaps(d.o.StateNamespace).Delete(ctx, inventoryName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}
