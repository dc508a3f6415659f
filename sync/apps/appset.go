package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/internal/tmplfuncs"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// maxGenerated bounds the Applications one ApplicationSet may generate.
const maxGenerated = 5000

// AddSets registers the operator's ApplicationSets (from the --app files).
func (d *Daemon) AddSets(sets ...*v1alpha1.ApplicationSet) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range sets {
		if s.Name == "" {
			return fmt.Errorf("ApplicationSet without metadata.name")
		}
		if _, dup := d.sets[s.Name]; dup {
			return fmt.Errorf("two ApplicationSets named %s", s.Name)
		}
		d.sets[s.Name] = s
		for _, g := range s.Spec.Generators {
			if g.Git != nil {
				d.allowed = append(d.allowed, gitsource.NormalizeURL(g.Git.RepoURL))
			}
		}
	}
	return nil
}

// setKey is the inventory key of an ApplicationSet's generated applications. It holds a
// '/' and capitals, which no Application name (a DNS-1123 subdomain) can, so no
// application can take a set's inventory (inventoryName keeps the two kinds apart).
func setKey(name string) string { return setKeyPrefix + name }

const setKeyPrefix = "ApplicationSet/"

// syncSet generates an operator ApplicationSet's Applications and syncs each; those no
// longer generated are removed (their resources only with the resources finalizer, and
// never with preserveResourcesOnDeletion).
func (d *Daemon) syncSet(ctx context.Context, set *v1alpha1.ApplicationSet, t Trigger) {
	key := setKey(set.Name)
	apps, err := d.generate(ctx, set, true)
	if err != nil {
		st := &Status{Name: "ApplicationSet/" + set.Name, Sync: Unknown, Health: "Degraded", Message: err.Error(), failed: true}
		d.setStatus(st)
		d.m.syncs.WithLabelValues("failed").Inc()
		d.log.Info("sync", "appset", set.Name, "result", "failed", "message", err.Error())
		return
	}
	d.mu.Lock()
	delete(d.status, "ApplicationSet/"+set.Name)
	d.mu.Unlock()
	inv, err := d.readInventory(ctx, key)
	if err != nil {
		d.log.Warn("applicationset inventory", "appset", set.Name, "error", err)
		return
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
		d.mu.Lock()
		e, ok := d.apps[a.Name]
		if ok && e.parent != key {
			d.mu.Unlock()
			d.setStatus(&Status{Name: a.Name, Parent: "ApplicationSet/" + set.Name, Sync: Unknown, Health: "Degraded", failed: true,
				Message: fmt.Sprintf("ApplicationSet %s generates application %s, which already belongs to %s", set.Name, a.Name, orRoot(e))})
			continue
		}
		d.apps[a.Name] = &appEntry{app: a, parent: key, root: true, generated: true}
		d.mu.Unlock()
		if d.shard != nil && !d.shard.owns(a.Name) {
			continue
		}
		if q := d.runQueue(); q != nil && t == Poll {
			q.Add(a.Name, kube.Low) // synced side by side, each on a worker of its own
			continue
		}
		d.syncRetrying(ctx, a, "ApplicationSet/"+set.Name, true, t, map[string]bool{key: true})
	}
	if t == DiffOnly {
		return
	}
	for _, c := range inv.Children {
		if slices.Contains(names, c) {
			continue
		}
		if err := d.removeChild(ctx, key, c, set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.PreserveResourcesOnDeletion); err != nil {
			d.log.Warn("removing a generated application", "appset", set.Name, "app", c, "error", err)
			names = append(names, c) // try again next time
		}
	}
	inv.Children = names
	if err := d.writeInventory(ctx, key, inv); err != nil {
		d.log.Warn("applicationset inventory", "appset", set.Name, "error", err)
	}
}

// runQueue is Run's work queue, nil outside Run.
func (d *Daemon) runQueue() *kube.Queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queue
}

// generate expands an ApplicationSet: each generator's parameter sets, each applied to the
// template. operator says the set is the operator's (an --app file): its git generator
// may read any repository; one from a repository only those its applications may use.
func (d *Daemon) generate(ctx context.Context, set *v1alpha1.ApplicationSet, operator bool) ([]*v1alpha1.Application, error) {
	var params []map[string]any
	for i, g := range set.Spec.Generators {
		var ps []map[string]any
		var err error
		switch {
		case g.List != nil:
			ps = append(ps, g.List.Elements...)
		case g.Clusters != nil && !operator && !d.o.RepoClustersGenerator:
			err = fmt.Errorf("the clusters generator is only for the operator's ApplicationSets (--repo-clusters-generator allows it in repositories)")
		case g.Clusters != nil:
			ps, err = d.clusterParams(ctx, g.Clusters)
		case g.Git != nil:
			ps, err = d.gitParams(ctx, g.Git, operator)
		default:
			err = fmt.Errorf("only the list, clusters and git (directories) generators are supported")
		}
		if err != nil {
			return nil, fmt.Errorf("ApplicationSet %s: generators[%d]: %w", set.Name, i, err)
		}
		params = append(params, ps...)
		if len(params) > maxGenerated {
			return nil, fmt.Errorf("ApplicationSet %s: more than %d parameter sets", set.Name, maxGenerated)
		}
	}
	var tmpl map[string]any
	if err := json.Unmarshal(set.Spec.Template, &tmpl); err != nil || tmpl == nil {
		return nil, fmt.Errorf("ApplicationSet %s: spec.template is not an Application template", set.Name)
	}
	var out []*v1alpha1.Application
	seen := map[string]bool{}
	tp := &templater{budget: tmplfuncs.NewBudget(ctx, setTemplateLimits), parsed: map[string]*tmplfuncs.Template{}}
	if slices.Contains(set.Spec.GoTemplateOptions, "missingkey=error") {
		tp.missingKey = "error"
	}
	for i, p := range params {
		v, err := tp.apply(tmpl, p, set.Spec.GoTemplate)
		if err != nil {
			return nil, fmt.Errorf("ApplicationSet %s: parameter set %d: %w", set.Name, i, err)
		}
		if m, ok := v.(map[string]any); ok {
			m["apiVersion"], m["kind"] = v1alpha1.APIVersion, v1alpha1.Kind
		}
		raw, _ := json.Marshal(v)
		app := &v1alpha1.Application{}
		if err := json.Unmarshal(raw, app); err != nil {
			return nil, fmt.Errorf("ApplicationSet %s: parameter set %d: the template does not make an Application: %v", set.Name, i, err)
		}
		var fields map[string]any
		_ = json.Unmarshal(raw, &fields)
		if err := v1alpha1.ApplicationFields.Check(fields); err != nil {
			return nil, fmt.Errorf("ApplicationSet %s: parameter set %d: spec.template makes an Application whose %w", set.Name, i, err)
		}
		if app.Name == "" {
			// The guide's set has no template name: name each after the set and the parameter.
			suffix := fmt.Sprint(i)
			if n, ok := flatten(p)["name"]; ok {
				suffix = normalize(n)
			} else if n, ok := flatten(p)["path.basename"]; ok {
				suffix = normalize(n)
			}
			app.Name = set.Name + "-" + suffix
		}
		if app.Spec.Project == "" {
			app.Spec.Project = "default"
		}
		if err := app.Validate(); err != nil {
			return nil, fmt.Errorf("ApplicationSet %s: parameter set %d: %w", set.Name, i, err)
		}
		if seen[app.Name] {
			return nil, fmt.Errorf("ApplicationSet %s: two parameter sets generate application %s", set.Name, app.Name)
		}
		seen[app.Name] = true
		out = append(out, app)
	}
	return out, nil
}

// clusterParams are Argo CD's clusters generator parameters, one set per cluster Secret the
// selector matches (and the daemon's own cluster, in-cluster, when the selector is empty):
// what Argo CD documents (name, nameNormalized, server, project, metadata.labels and
// metadata.annotations, values) and nothing else of the Secret; annotations lose kubectl's
// last-applied-configuration and the operator's excluded prefixes.
func (d *Daemon) clusterParams(ctx context.Context, g *v1alpha1.ClusterGenerator) ([]map[string]any, error) {
	sel, err := metav1.LabelSelectorAsSelector(&g.Selector)
	if err != nil {
		return nil, fmt.Errorf("clusters.selector: %v", err)
	}
	list, err := d.hub.kube.CoreV1().Secrets(d.o.StateNamespace).List(ctx, metav1.ListOptions{LabelSelector: LabelSecretType + "=" + ClusterSecretType})
	if err != nil {
		return nil, fmt.Errorf("reading cluster Secrets: %s", redact.APIError(err))
	}
	var out []map[string]any
	param := func(name, server, project string, lbls, ann map[string]string) map[string]any {
		l, a, vals := map[string]any{}, map[string]any{}, map[string]any{}
		for k, v := range lbls {
			l[k] = v
		}
		for k, v := range ann {
			if !d.clusterAnnotation(k) {
				continue
			}
			a[k] = v
		}
		for k, v := range g.Values {
			vals[k] = v
		}
		return map[string]any{"name": name, "nameNormalized": normalize(name), "server": server, "project": project,
			"metadata": map[string]any{"labels": l, "annotations": a}, "values": vals}
	}
	if sel.Empty() {
		out = append(out, param(v1alpha1.InClusterName, v1alpha1.InCluster, "", nil, nil))
	}
	for _, s := range list.Items {
		if !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		out = append(out, param(string(s.Data["name"]), strings.TrimSuffix(string(s.Data["server"]), "/"), string(s.Data["project"]), s.Labels, s.Annotations))
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	return out, nil
}

// clusterAnnotation tells whether a cluster Secret's annotation may reach a template.
func (d *Daemon) clusterAnnotation(key string) bool {
	if key == corev1.LastAppliedConfigAnnotation {
		return false
	}
	for _, p := range d.o.ClusterAnnotationsExcluded {
		if strings.HasPrefix(key, p) {
			return false
		}
	}
	return true
}

// gitParams are the git directories generator's parameters: one set per directory of the
// repository matching a path glob and no exclude glob.
func (d *Daemon) gitParams(ctx context.Context, g *v1alpha1.GitGenerator, operator bool) ([]map[string]any, error) {
	if len(g.Files) > 0 {
		return nil, fmt.Errorf("git.files is not supported (git.directories is)")
	}
	probe := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Source: &v1alpha1.ApplicationSource{RepoURL: g.RepoURL, TargetRevision: g.Revision}}}
	co, _, err := d.source(ctx, probe, operator)
	if err != nil {
		return nil, err
	}
	var include, exclude []string
	for _, dir := range g.Directories {
		if dir.Exclude {
			exclude = append(exclude, dir.Path)
		} else {
			include = append(include, dir.Path)
		}
	}
	var out []map[string]any
	err = filepath.WalkDir(co.Dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() || p == co.Dir {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(co.Dir, p)
		rel = filepath.ToSlash(rel)
		if matchPaths(include, rel) && !matchPaths(exclude, rel) {
			base := path.Base(rel)
			segs := strings.Split(rel, "/")
			out = append(out, map[string]any{"path": map[string]any{"path": rel, "basename": base, "basenameNormalized": normalize(base), "segments": toAny(segs)}})
		}
		return nil
	})
	return out, err
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func matchPaths(globs []string, rel string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
	}
	return false
}

var notDNS = regexp.MustCompile(`[^a-z0-9-.]+`)

// normalize makes a name fit a Kubernetes object name, as Argo CD's nameNormalized does.
func normalize(s string) string {
	return strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-.")
}

// flatten turns nested parameters into Argo CD's legacy dotted names: metadata.labels.env,
// path.basename, path[0].
func flatten(p map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, sub := range t {
				name := k
				if prefix != "" {
					name = prefix + "." + k
				}
				walk(name, sub)
			}
		case []any:
			for i, sub := range t {
				walk(fmt.Sprintf("%s[%d]", strings.TrimSuffix(prefix, ".segments"), i), sub)
			}
		case nil:
			out[prefix] = ""
		default:
			out[prefix] = fmt.Sprint(t)
		}
	}
	walk("", p)
	// The git generator's path is a string in the legacy syntax.
	if v, ok := out["path.path"]; ok {
		out["path"] = v
	}
	return out
}

var legacyTag = regexp.MustCompile(`\{\{\s*([^{}]+?)\s*\}\}`)

// setTemplateLimits is the budget of one ApplicationSet's templates, over all its
// parameter sets: a hostile set stops within it, and the daemon moves on to the others.
var setTemplateLimits = tmplfuncs.Limits{Time: 2 * time.Second, Steps: 1_000_000, Memory: 32 << 20, Output: 16 << 20}

// templater renders an ApplicationSet's template on one budget, parsing each distinct
// string once.
type templater struct {
	budget     *tmplfuncs.Budget
	missingKey string
	parsed     map[string]*tmplfuncs.Template
}

// apply renders every string of the template: {{name}} tags (legacy; an unknown tag
// is left as it is, as Argo CD leaves it) or Go templates with goTemplate.
func (tp *templater) apply(tmpl map[string]any, p map[string]any, goTmpl bool) (any, error) {
	flat := flatten(p)
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		switch t := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, sub := range t {
				r, err := walk(sub)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		case []any:
			out := make([]any, len(t))
			for i, sub := range t {
				r, err := walk(sub)
				if err != nil {
					return nil, err
				}
				out[i] = r
			}
			return out, nil
		case string:
			if !strings.Contains(t, "{{") {
				return t, nil
			}
			if !goTmpl {
				return legacyTag.ReplaceAllStringFunc(t, func(tag string) string {
					name := strings.TrimSpace(tag[2 : len(tag)-2])
					if v, ok := flat[name]; ok {
						return v
					}
					return tag
				}), nil
			}
			t2, ok := tp.parsed[t]
			if !ok {
				var err error
				if t2, err = tp.budget.Parse("template", t, tp.missingKey); err != nil {
					return nil, fmt.Errorf("template %q: %v", t, err)
				}
				tp.parsed[t] = t2
			}
			out, err := t2.Execute(p)
			if err != nil {
				return nil, fmt.Errorf("template %q: %v", t, err)
			}
			return out, nil
		}
		return v, nil
	}
	return walk(tmpl)
}
