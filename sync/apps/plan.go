package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
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
	deferred bool // not checked by the dry run: its namespace or CRD comes earlier in this sync
	health   kube.Health
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
		if namespaced && creates["ns/"+it.obj.GetNamespace()] {
			p.deferred = p.deferred || !d.namespaceExists(ctx, it.obj.GetNamespace())
		}
	}

	// Live state and dry runs, concurrently.
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
		sortStrings(problems)
		return nil, fmt.Errorf("the dry run refused %d object(s), nothing was applied:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return out, nil
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
	res := d.resource(p.mapping, p.obj.GetNamespace())
	live, err := res.Get(ctx, p.obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return fmt.Errorf("%s: reading %s: %v", p.source, k, reason(err))
	}
	p.live = live
	if live != nil {
		if owner := live.GetAnnotations()[AnnotationTracking]; owner != "" && !strings.HasPrefix(owner, app+":") {
			other, _, _ := strings.Cut(owner, ":")
			return fmt.Errorf("%s: %s belongs to application %s; an object is managed by one application", p.source, k, other)
		}
	}
	if live != nil && len(rules) > 0 && p.respect {
		p.obj = withLiveValues(rules, k, p.obj, live)
	}
	dry, err := d.applyRequest(ctx, p, true)
	if err != nil {
		if live == nil && apierrors.IsNotFound(err) {
			p.action, p.deferred = create, true // its namespace arrives with this sync
			return nil
		}
		return fmt.Errorf("%s: %s: %v", p.source, k, reason(err))
	}
	switch {
	case live == nil:
		p.action = create
	case drifted(rules, k, live, dry):
		p.action = update
	default:
		p.action = unchanged
		p.health = kube.HealthOf(live)
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
	b, _ := jsonMarshal(out)
	if err := u.UnmarshalJSON(b); err != nil {
		return desired
	}
	return u
}

// reason is an API error without the object or values it may quote: a validation error
// by field and kind of error only (a rendered secret value can be what a field holds).
func reason(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return err.Error()
	}
	s := st.Status()
	if s.Reason == metav1.StatusReasonInvalid {
		var parts []string
		if s.Details != nil {
			for _, c := range s.Details.Causes {
				parts = append(parts, fmt.Sprintf("%s: %s", c.Field, c.Type))
			}
		}
		return fmt.Sprintf("invalid (%s)", strings.Join(parts, "; "))
	}
	msg := s.Message
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return fmt.Sprintf("%s (%d %s)", msg, s.Code, s.Reason)
}
