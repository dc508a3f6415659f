package apply

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
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
)

// Action is what applying does to an object.
type Action int

const (
	Unchanged Action = iota
	Create
	Update
)

// Planned is an object with its place in the cluster and what the dry run found.
type Planned struct {
	*Object
	Mapping  *meta.RESTMapping // nil until the kind exists (its CRD is in the same change set)
	Live     *unstructured.Unstructured
	Action   Action
	Deferred bool                       // not checked by the dry run: its namespace or CRD comes earlier in this change set
	Listed   bool                       // Live came from a List (nil: the object does not exist)
	Dry      *unstructured.Unstructured // the dry run's result, when one was made
	Health   Health
	HandOver bool // fields written by client-side apply are handed to keyway first (handover.go)
	Replace  bool // an immutable field changes: the object is deleted and created again
}

// PlanOptions say where objects go and who owns them.
type PlanOptions struct {
	// Namespace is given to namespaced objects that name none ("" means "default").
	Namespace string
	// CreatesNamespace says Namespace is created before the first write, when missing.
	CreatesNamespace bool
	Owner            Owner
	Rules            []IgnoreRule
}

// Owner is who applies a set of objects: each carries Annotation, with the value ID gives,
// and an object whose value names another owner is refused.
type Owner struct {
	Annotation string
	ID         func(Key) string
	// Other names the owner an annotation value marks, or "" when it marks this owner.
	Other func(value string) string
}

// Plan prepares every object (namespace, owner annotation), reads its live state and
// checks it with a server-side dry run, before anything is written. An object the dry run
// refuses fails the plan; one whose namespace or CRD this change set creates first is deferred.
func (c *Cluster) Plan(ctx context.Context, o PlanOptions, items []*Object) ([]*Planned, error) {
	dest := o.Namespace
	creates := map[string]bool{} // namespaces and CRD kinds this change set brings
	if o.CreatesNamespace && dest != "" {
		creates["ns/"+dest] = true
	}
	crdScope := map[string]string{}
	for _, it := range items {
		switch it.Obj.GetKind() {
		case "Namespace":
			creates["ns/"+it.Obj.GetName()] = true
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(it.Obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(it.Obj.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(it.Obj.Object, "spec", "scope")
			crdScope[kind+"."+group] = scope
		}
	}
	out := make([]*Planned, len(items))
	seen := map[Key]string{}
	for i, it := range items {
		p := &Planned{Object: it}
		out[i] = p
		gvk := it.Obj.GroupVersionKind()
		m, err := c.Mapping(gvk)
		namespaced := false
		switch {
		case err == nil:
			p.Mapping = m
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err):
			scope, ok := crdScope[gvk.GroupKind().String()]
			if !ok {
				return nil, fmt.Errorf("%s: %s %s: the cluster has no such kind, and no CRD in this application defines it", it.Source, gvk.GroupVersion(), gvk.Kind)
			}
			p.Deferred = true
			namespaced = scope != "Cluster"
		default:
			return nil, fmt.Errorf("%s: %s: %w", it.Source, gvk, err)
		}
		if namespaced && it.Obj.GetNamespace() == "" {
			ns := dest
			if ns == "" {
				ns = "default"
			}
			it.Obj.SetNamespace(ns)
		} else if !namespaced {
			it.Obj.SetNamespace("")
		}
		k := it.Key()
		if it.Obj.GetName() != "" {
			if prev, dup := seen[k]; dup && !it.IsHook() {
				return nil, fmt.Errorf("%s: %s is also rendered by %s", it.Source, k, prev)
			}
			seen[k] = it.Source
		}
		ann := it.Obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[o.Owner.Annotation] = o.Owner.ID(k)
		it.Obj.SetAnnotations(ann)
		if err := normalizeSecret(it.Obj); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", it.Source, k, err)
		}
		if !it.IsHook() {
			setAppliedHash(it.Obj)
		}
	}
	if err := c.checkNamespaces(ctx, out, creates); err != nil {
		return nil, err
	}

	// Live state: one List per kind and namespace where an application has several
	// objects, instead of a GET each.
	c.listLive(ctx, out)

	// Dry runs, concurrently, where the live object may differ.
	var mu sync.Mutex
	var problems []string
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, p := range out {
		if p.IsHook() || p.Obj.GetName() == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c.check(ctx, o, p); err != nil {
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
func (c *Cluster) listLive(ctx context.Context, ps []*Planned) {
	type group struct {
		gvr schema.GroupVersionResource
		ns  string
	}
	groups := map[group][]*Planned{}
	mappings := map[group]*meta.RESTMapping{}
	for _, p := range ps {
		if p.IsHook() || p.Deferred || p.Mapping == nil || p.Obj.GetName() == "" {
			continue
		}
		g := group{p.Mapping.Resource, p.Obj.GetNamespace()}
		groups[g] = append(groups[g], p)
		mappings[g] = p.Mapping
	}
	for g, members := range groups {
		if len(members) < 8 {
			continue
		}
		list, err := c.Resource(mappings[g], g.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // read one by one instead
		}
		byName := make(map[string]*unstructured.Unstructured, len(list.Items))
		for i := range list.Items {
			byName[list.Items[i].GetName()] = &list.Items[i]
		}
		for _, p := range members {
			p.Live, p.Listed = byName[p.Obj.GetName()], true
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
func touchedByOthers(live *unstructured.Unstructured, fieldManager string) bool {
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

// normalizeSecret moves a Secret's stringData into data, as the API server stores it.
// Server-side apply tracks the fields it was sent: a key applied through stringData is owned
// as stringData, which is never stored, so when the key leaves git nothing removes it from
// data (kubernetes/kubernetes#108008) and a deleted credential stays live. Applied as data,
// a key that leaves the object leaves the cluster; the dry run and the diff compare data
// with data.
func normalizeSecret(u *unstructured.Unstructured) error {
	if u.GetAPIVersion() != "v1" || u.GetKind() != "Secret" {
		return nil
	}
	sd, ok := u.Object["stringData"]
	if !ok {
		return nil
	}
	strs, ok := sd.(map[string]any)
	if !ok && sd != nil {
		return errors.New("stringData is not a map of strings")
	}
	data, _ := u.Object["data"].(map[string]any)
	if data == nil {
		if u.Object["data"] != nil {
			return errors.New("data is not a map of base64 strings")
		}
		data = map[string]any{}
	}
	for k, v := range strs {
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("stringData[%s] is not a string", k)
		}
		data[k] = base64.StdEncoding.EncodeToString([]byte(str)) // stringData wins, as in the API server
	}
	delete(u.Object, "stringData")
	if len(data) > 0 {
		u.Object["data"] = data
	}
	return nil
}

// checkNamespaces reads once each namespace this change set creates, and each namespace
// a hook goes to (hooks get no dry run). An object whose namespace the change set creates
// and that does not exist yet is deferred (no dry run can see it before); a hook whose
// namespace is missing and not created fails the plan, before anything is written. Other
// objects need no read: their dry run says when their namespace is missing (check).
func (c *Cluster) checkNamespaces(ctx context.Context, ps []*Planned, creates map[string]bool) error {
	missing := map[string]bool{}
	var refused []string
	for _, p := range ps {
		ns := p.Obj.GetNamespace()
		if ns == "" || (!creates["ns/"+ns] && !p.IsHook()) {
			continue
		}
		gone, seen := missing[ns]
		if !seen {
			_, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			gone = apierrors.IsNotFound(err)
			missing[ns] = gone
			if gone && !creates["ns/"+ns] {
				refused = append(refused, nsMissing(p))
			}
		}
		if gone {
			p.Deferred = true
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return fmt.Errorf("%d namespace(s) missing, nothing was applied:\n  %s", len(refused), strings.Join(refused, "\n  "))
	}
	return nil
}

func nsMissing(p *Planned) string {
	return fmt.Sprintf("%s: %s: namespace %s does not exist, and nothing in this change set creates it", p.Source, p.Key(), p.Obj.GetNamespace())
}

// check reads p's live object and dry-runs the apply, deciding p.Action.
func (c *Cluster) check(ctx context.Context, o PlanOptions, p *Planned) error {
	rules := o.Rules
	k := p.Key()
	if p.Deferred {
		p.Action = Create
		return nil
	}
	live := p.Live
	if !p.Listed {
		var err error
		live, err = c.Resource(p.Mapping, p.Obj.GetNamespace()).Get(ctx, p.Obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			live = nil
		case err != nil:
			return fmt.Errorf("%s: reading %s: %v", p.Source, k, redact.APIError(err))
		}
		p.Live = live
	}
	if live != nil {
		if v := live.GetAnnotations()[o.Owner.Annotation]; v != "" {
			if other := o.Owner.Other(v); other != "" {
				return fmt.Errorf("%s: %s belongs to %s; an object is managed by one owner", p.Source, k, other)
			}
		}
	}
	if live != nil && len(rules) > 0 && p.Respect {
		p.Obj = withLiveValues(rules, k, p.Obj, live)
	}
	// What keyway last applied is recorded on the object as a hash: when it matches and no
	// other field manager has written the object since, nothing can differ and the dry
	// run is skipped (a no-op resync then costs one List per kind).
	hash := setAppliedHash(p.Obj)
	p.HandOver = live != nil && c.needsHandOver(live)
	if live != nil && live.GetAnnotations()[AnnotationApplied] == hash && !touchedByOthers(live, c.FieldManager) && !p.HandOver {
		p.Action = Unchanged
		p.Health = HealthOf(live)
		return nil
	}
	dry, err := c.Apply(ctx, p, true)
	p.Dry = dry
	if err != nil {
		if live == nil && apierrors.IsNotFound(err) {
			// Its namespace is missing; one this change set creates was deferred above.
			return errors.New(nsMissing(p))
		}
		if live != nil && immutable(err) {
			if p.Recreate {
				p.Action, p.Replace = Update, true // deleted and created again (recreate.go)
				return nil
			}
			return fmt.Errorf("%s: %s: %v (the object must be recreated for this change: the sync option Replace=true or Force=true allows it)", p.Source, k, redact.APIError(err))
		}
		return fmt.Errorf("%s: %s: %v", p.Source, k, redact.APIError(err))
	}
	switch {
	case live == nil:
		p.Action = Create
		p.Health = Health{Status: Missing} // until it is applied: an application lacking it is Missing, as in Argo CD
	case drifted(rules, k, live, dry), p.HandOver:
		p.Action = Update
	default:
		p.Action = Unchanged
		p.Health = HealthOf(live)
	}
	return nil
}

// Apply sends p's object as a server-side apply, conflicts forced (a dry run when dry).
func (c *Cluster) Apply(ctx context.Context, p *Planned, dry bool) (*unstructured.Unstructured, error) {
	data, err := p.Obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: c.FieldManager, Force: &force}
	if dry {
		opts.DryRun = []string{metav1.DryRunAll}
	} else if p.Replace && p.Live != nil {
		if err := c.recreate(ctx, p); err != nil {
			return nil, err
		}
	} else if p.HandOver && p.Live != nil {
		if err := c.handOver(ctx, p); err != nil {
			return nil, err
		}
	}
	out, err := c.Resource(p.Mapping, p.Obj.GetNamespace()).Patch(ctx, p.Obj.GetName(), types.ApplyPatchType, data, opts)
	if err == nil && !dry {
		c.wrote("apply", out)
	}
	return out, err
}

// drifted compares the live object with the dry run's result: labels, annotations and
// everything outside metadata and status, less the ignored paths.
func drifted(rules []IgnoreRule, k Key, live, dry *unstructured.Unstructured) bool {
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
func withLiveValues(rules []IgnoreRule, k Key, desired, live *unstructured.Unstructured) *unstructured.Unstructured {
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
