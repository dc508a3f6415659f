package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// action is what a sync does to an object.
type action int

const (
	unchanged action = iota
	create
	update
)

// planned is an item with its place in the cluster and what the dry run found.
type planned struct {
	*item
	mapping  *meta.RESTMapping // nil until the kind exists (its CRD is in the same sync)
	live     *unstructured.Unstructured
	action   action
	deferred bool                       // not checked by the dry run: its namespace or CRD comes earlier in this sync
	listed   bool                       // live came from a List (nil: the object does not exist)
	dry      *unstructured.Unstructured // the dry run's result, when one was made
	health   apply.Health
}

// plan prepares every object (namespace, tracking annotation), reads its live state and
// checks it with a server-side dry run, before anything is written. An object the dry run
// refuses fails the plan; one whose namespace or CRD this sync creates first is deferred.
func (d *Daemon) plan(ctx context.Context, a *v1alpha1.Application, items []*item, rules []ignoreRule) ([]*planned, error) {
	dest := a.Spec.Destination.Namespace
	creates := map[string]bool{} // namespaces and CRD kinds this sync brings
	if a.Options().Has("CreateNamespace=true") && dest != "" {
		creates["ns/"+dest] = true
	}
	crdScope := map[string]string{}
	for _, it := range items {
		switch it.obj.GetKind() {
		case "Namespace":
			creates["ns/"+it.obj.GetName()] = true
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(it.obj.Object, "spec", "scope")
			crdScope[kind+"."+group] = scope
		}
	}
	out := make([]*planned, len(items))
	seen := map[objKey]string{}
	for i, it := range items {
		p := &planned{item: it}
		out[i] = p
		gvk := it.obj.GroupVersionKind()
		m, err := d.mapping(gvk)
		namespaced := false
		switch {
		case err == nil:
			p.mapping = m
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err):
			scope, ok := crdScope[gvk.GroupKind().String()]
			if !ok {
				return nil, fmt.Errorf("%s: %s %s: the cluster has no such kind, and no CRD in this application defines it", it.source, gvk.GroupVersion(), gvk.Kind)
			}
			p.deferred = true
			namespaced = scope != "Cluster"
		default:
			return nil, fmt.Errorf("%s: %s: %w", it.source, gvk, err)
		}
		if namespaced && it.obj.GetNamespace() == "" {
			ns := dest
			if ns == "" {
				ns = "default"
			}
			it.obj.SetNamespace(ns)
		} else if !namespaced {
			it.obj.SetNamespace("")
		}
		k := it.key()
		if it.obj.GetName() != "" {
			if prev, dup := seen[k]; dup && !it.isHook() {
				return nil, fmt.Errorf("%s: %s is also rendered by %s", it.source, k, prev)
			}
			seen[k] = it.source
		}
		ann := it.obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationTracking] = trackingID(a.Name, k)
		it.obj.SetAnnotations(ann)
		if !it.isHook() {
			setAppliedHash(it.obj)
		}
		if namespaced && creates["ns/"+it.obj.GetNamespace()] {
			p.deferred = p.deferred || !d.namespaceExists(ctx, it.obj.GetNamespace())
		}
	}

	// Live state: one List per kind and namespace where an application has several
	// objects, instead of a GET each.
	d.listLive(ctx, out)

	// Dry runs, concurrently, where the live object may differ.
	var mu sync.Mutex
	var problems []string
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, p := range out {
		if p.isHook() || p.obj.GetName() == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := d.check(ctx, a.Name, p, rules); err != nil {
				mu.Lock()
				problems = append(problems, err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("the dry run refused %d object(s), nothing was applied:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return out, nil
}

// listLive fills in the live objects of planned items by listing each kind and namespace
// that holds several of them; items it could not list are read one by one in check.
func (d *Daemon) listLive(ctx context.Context, ps []*planned) {
	type group struct {
		gvr schema.GroupVersionResource
		ns  string
	}
	groups := map[group][]*planned{}
	mappings := map[group]*meta.RESTMapping{}
	for _, p := range ps {
		if p.isHook() || p.deferred || p.mapping == nil || p.obj.GetName() == "" {
			continue
		}
		g := group{p.mapping.Resource, p.obj.GetNamespace()}
		groups[g] = append(groups[g], p)
		mappings[g] = p.mapping
	}
	for g, members := range groups {
		if len(members) < 8 {
			continue
		}
		list, err := d.resource(mappings[g], g.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // read one by one instead
		}
		byName := make(map[string]*unstructured.Unstructured, len(list.Items))
		for i := range list.Items {
			byName[list.Items[i].GetName()] = &list.Items[i]
		}
		for _, p := range members {
			p.live, p.listed = byName[p.obj.GetName()], true
		}
	}
}

// AnnotationApplied holds a hash of what keyway last applied to an object.
const AnnotationApplied = "keyway.dev/applied"

// setAppliedHash records the object's hash in its annotation and returns it.
func setAppliedHash(u *unstructured.Unstructured) string {
	h := appliedHash(u)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationApplied] = h
	u.SetAnnotations(ann)
	return h
}

// appliedHash hashes the object keyway is about to apply (without the hash annotation).
func appliedHash(u *unstructured.Unstructured) string {
	c := u.DeepCopy()
	ann := c.GetAnnotations()
	delete(ann, AnnotationApplied)
	c.SetAnnotations(ann)
	b, _ := c.MarshalJSON() // map keys are sorted: the same object hashes the same
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// touchedByOthers reports whether a field manager other than keyway wrote the object (not
// its status) at or after keyway's last apply: then it may have changed what keyway owns.
func touchedByOthers(live *unstructured.Unstructured) bool {
	var ours *metav1.Time
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == fieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "" {
			ours = mf.Time
		}
	}
	if ours == nil {
		return true
	}
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == fieldManager || mf.Subresource == "status" {
			continue
		}
		if mf.Time == nil || !mf.Time.Before(ours) {
			return true
		}
	}
	return false
}

func (d *Daemon) namespaceExists(ctx context.Context, ns string) bool {
	_, err := d.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	return err == nil
}

// check reads p's live object and dry-runs the apply, deciding p.action.
func (d *Daemon) check(ctx context.Context, app string, p *planned, rules []ignoreRule) error {
	k := p.key()
	if p.deferred {
		p.action = create
		return nil
	}
	live := p.live
	if !p.listed {
		var err error
		live, err = d.resource(p.mapping, p.obj.GetNamespace()).Get(ctx, p.obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			live = nil
		case err != nil:
			return fmt.Errorf("%s: reading %s: %v", p.source, k, redact.APIError(err))
		}
		p.live = live
	}
	if live != nil {
		if owner := live.GetAnnotations()[AnnotationTracking]; owner != "" && !strings.HasPrefix(owner, app+":") {
			other, _, _ := strings.Cut(owner, ":")
			return fmt.Errorf("%s: %s belongs to application %s; an object is managed by one application", p.source, k, other)
		}
	}
	if live != nil && len(rules) > 0 && p.respect {
		p.obj = withLiveValues(rules, k, p.obj, live)
	}
	// What keyway last applied is recorded on the object as a hash: when it matches and no
	// other field manager has written the object since, nothing can differ and the dry
	// run is skipped (a no-op resync then costs one List per kind).
	hash := setAppliedHash(p.obj)
	if live != nil && live.GetAnnotations()[AnnotationApplied] == hash && !touchedByOthers(live) {
		p.action = unchanged
		p.health = apply.HealthOf(live)
		return nil
	}
	dry, err := d.applyRequest(ctx, p, true)
	p.dry = dry
	if err != nil {
		if live == nil && apierrors.IsNotFound(err) {
			p.action, p.deferred = create, true // its namespace arrives with this sync
			return nil
		}
		return fmt.Errorf("%s: %s: %v", p.source, k, redact.APIError(err))
	}
	switch {
	case live == nil:
		p.action = create
	case drifted(rules, k, live, dry):
		p.action = update
	default:
		p.action = unchanged
		p.health = apply.HealthOf(live)
	}
	return nil
}

// applyRequest sends p's object as a server-side apply (a dry run when dry).
func (d *Daemon) applyRequest(ctx context.Context, p *planned, dry bool) (*unstructured.Unstructured, error) {
	data, err := p.obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: &force}
	if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := d.resource(p.mapping, p.obj.GetNamespace()).Patch(ctx, p.obj.GetName(), types.ApplyPatchType, data, opts)
	if err == nil && !dry {
		d.m.writes.WithLabelValues("apply").Inc()
		d.noteWrite(out)
	}
	return out, err
}

// drifted compares the live object with the dry run's result: labels, annotations and
// everything outside metadata and status, less the ignored paths.
func drifted(rules []ignoreRule, k objKey, live, dry *unstructured.Unstructured) bool {
	if !equality.Semantic.DeepEqual(nonEmpty(live.GetLabels()), nonEmpty(dry.GetLabels())) ||
		!equality.Semantic.DeepEqual(nonEmpty(live.GetAnnotations()), nonEmpty(dry.GetAnnotations())) {
		return true
	}
	a, b := body(live), body(dry)
	for _, p := range ignoredPaths(rules, k, a, live) {
		deletePath(a, p)
		deletePath(b, p)
	}
	return !equality.Semantic.DeepEqual(a, b)
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// body is the object as JSON values, without metadata and status.
func body(u *unstructured.Unstructured) map[string]any {
	m, _ := toGeneric(u.Object).(map[string]any)
	delete(m, "metadata")
	delete(m, "status")
	return m
}

// withLiveValues returns desired with the ignored paths set to their live values
// (RespectIgnoreDifferences=true), so applying never reverts them.
func withLiveValues(rules []ignoreRule, k objKey, desired, live *unstructured.Unstructured) *unstructured.Unstructured {
	liveJSON, _ := toGeneric(live.Object).(map[string]any)
	out, _ := toGeneric(desired.Object).(map[string]any)
	for _, p := range ignoredPaths(rules, k, liveJSON, live) {
		if v, ok := getPath(liveJSON, p); ok {
			setPath(out, p, v)
		} else {
			deletePath(out, p)
		}
	}
	u := &unstructured.Unstructured{}
	b, _ := json.Marshal(out)
	if err := u.UnmarshalJSON(b); err != nil {
		return desired
	}
	return u
}
