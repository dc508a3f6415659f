package apps

import (
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// rendered is a render's output sorted into objects and child applications.
type rendered struct {
	items    []*apply.Object
	children []*v1alpha1.Application
	sets     []*v1alpha1.ApplicationSet
}

// classify decodes documents into objects (v1 List items expanded) and child Applications.
func classify(docs []*manifest.Document) (rendered, error) {
	var out rendered
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		v, err := manifest.ToJSON(d.Root)
		if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
		}
		if v == nil {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
		}
		where := fmt.Sprintf("%s: document %d", d.Source, d.Index)
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(raw); err != nil {
			return out, fmt.Errorf("%s: not a Kubernetes object (apiVersion and kind are required)", where)
		}
		objs := []*unstructured.Unstructured{&u}
		secretPaths := [][][]string{d.SecretPaths()}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return out, fmt.Errorf("%s: %w", where, err)
			}
			objs = objs[:0]
			secretPaths = make([][][]string, len(list.Items))
			for i := range list.Items {
				objs = append(objs, &list.Items[i])
			}
			for _, p := range d.SecretPaths() {
				if len(p) > 2 && p[0] == "items" {
					if i, err := strconv.Atoi(p[1]); err == nil && i >= 0 && i < len(secretPaths) {
						secretPaths[i] = append(secretPaths[i], p[2:])
					}
				}
			}
		}
		for oi, o := range objs {
			if o.GetName() == "" && o.GetGenerateName() == "" {
				return out, fmt.Errorf("%s: %s without metadata.name", where, o.GetKind())
			}
			if o.GetAPIVersion() == v1alpha1.APIVersion && o.GetKind() == v1alpha1.Kind {
				b, _ := o.MarshalJSON()
				app, err := v1alpha1.DecodeApplication(b)
				if err != nil {
					return out, fmt.Errorf("%s: %w", where, err)
				}
				out.children = append(out.children, app)
				continue
			}
			if o.GetAPIVersion() == v1alpha1.APIVersion && o.GetKind() == v1alpha1.SetKind {
				b, _ := o.MarshalJSON()
				set, err := v1alpha1.DecodeApplicationSet(b)
				if err != nil {
					return out, fmt.Errorf("%s: %w", where, err)
				}
				out.sets = append(out.sets, set)
				continue
			}
			it, err := newItem(o, where)
			if err != nil {
				return out, err
			}
			it.Secrets = secretPaths[oi]
			if skipped(it) {
				continue
			}
			if o.GetName() == "" && !it.IsHook() {
				return out, fmt.Errorf("%s: %s with generateName only: only hooks may be created by generateName", where, o.GetKind())
			}
			out.items = append(out.items, it)
		}
	}
	return out, nil
}
