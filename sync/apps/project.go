package apps

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// defaultProject is Argo CD's default project: anything, anywhere.
var defaultProject = &v1alpha1.AppProject{Spec: v1alpha1.AppProjectSpec{
	SourceRepos:              []string{"*"},
	Destinations:             []v1alpha1.ApplicationDestination{{Server: "*", Name: "*", Namespace: "*"}},
	ClusterResourceWhitelist: []v1alpha1.GroupKind{{Group: "*", Kind: "*"}},
}}

// AddProjects registers the operator's AppProjects (from the --app files, never from a
// repository). "default" is Argo CD's permissive default unless one is given.
func (d *Daemon) AddProjects(projects ...*v1alpha1.AppProject) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range projects {
		if p.Name == "" {
			return fmt.Errorf("AppProject without metadata.name")
		}
		if _, dup := d.projects[p.Name]; dup {
			return fmt.Errorf("two AppProjects named %s", p.Name)
		}
		d.projects[p.Name] = p
	}
	return nil
}

func (d *Daemon) project(name string) (*v1alpha1.AppProject, error) {
	if name == "" {
		name = "default"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.projects[name]; ok {
		return p, nil
	}
	if name == "default" {
		return defaultProject, nil
	}
	return nil, fmt.Errorf("AppProject %s: no such project (projects come from the daemon's --app files)", name)
}

// permitSource checks the application's repository and destination against its project.
func permitSource(proj *v1alpha1.AppProject, a *v1alpha1.Application) error {
	name := a.Spec.Project
	if name == "" {
		name = "default"
	}
	if !matchAnyGlob(proj.Spec.SourceRepos, a.Spec.Source.RepoURL) {
		return fmt.Errorf("AppProject %s: repository %s is not in sourceRepos", name, a.Spec.Source.RepoURL)
	}
	if err := permitNamespace(proj, name, a.Spec.Destination, a.Spec.Destination.Namespace); err != nil {
		return err
	}
	return nil
}

// permitNamespace checks a destination server/name with a namespace.
func permitNamespace(proj *v1alpha1.AppProject, name string, dest v1alpha1.ApplicationDestination, ns string) error {
	for _, d := range proj.Spec.Destinations {
		serverOK := (d.Server != "" && dest.Server != "" && glob(d.Server, dest.Server)) ||
			(d.Name != "" && glob(d.Name, destName(dest)))
		if serverOK && glob(d.Namespace, ns) {
			return nil
		}
	}
	return fmt.Errorf("AppProject %s: destination %s namespace %q is not in destinations", name, destLabel(dest), ns)
}

// destName is the destination's cluster name (in-cluster for the daemon's own).
func destName(d v1alpha1.ApplicationDestination) string {
	if d.Name != "" {
		return d.Name
	}
	if d.Server == v1alpha1.InCluster {
		return v1alpha1.InClusterName
	}
	return ""
}

func destLabel(d v1alpha1.ApplicationDestination) string {
	if d.Server != "" {
		return d.Server
	}
	return d.Name
}

// permitKind checks one rendered object's kind and namespace against the project: a
// cluster-scoped kind must be on clusterResourceWhitelist and off the blacklist; a
// namespaced one off namespaceResourceBlacklist, on the whitelist when there is one, and
// in a namespace the project's destinations allow.
func permitKind(proj *v1alpha1.AppProject, name string, dest v1alpha1.ApplicationDestination, group, kind, ns string, namespaced bool) error {
	if name == "" {
		name = "default"
	}
	what := kind
	if group != "" {
		what = kind + "." + group
	}
	if !namespaced {
		if !matchKinds(proj.Spec.ClusterResourceWhitelist, group, kind) || matchKinds(proj.Spec.ClusterResourceBlacklist, group, kind) {
			return fmt.Errorf("AppProject %s: cluster-scoped %s is not allowed (clusterResourceWhitelist/Blacklist)", name, what)
		}
		return nil
	}
	if matchKinds(proj.Spec.NamespaceResourceBlacklist, group, kind) ||
		(len(proj.Spec.NamespaceResourceWhitelist) > 0 && !matchKinds(proj.Spec.NamespaceResourceWhitelist, group, kind)) {
		return fmt.Errorf("AppProject %s: %s is not allowed (namespaceResourceWhitelist/Blacklist)", name, what)
	}
	return permitNamespace(proj, name, dest, ns)
}

func matchKinds(list []v1alpha1.GroupKind, group, kind string) bool {
	for _, gk := range list {
		if glob(gk.Group, group) && glob(gk.Kind, kind) {
			return true
		}
	}
	return false
}

func matchAnyGlob(globs []string, s string) bool {
	for _, g := range globs {
		if glob(g, s) {
			return true
		}
	}
	return false
}

var (
	globMu    sync.Mutex
	globCache = map[string]*regexp.Regexp{}
)

// glob matches s against a pattern where * is any run of characters and ? one, as Argo CD's
// project globs do.
func glob(pattern, s string) bool {
	if pattern == "*" || pattern == s {
		return true
	}
	globMu.Lock()
	re, ok := globCache[pattern]
	if !ok {
		var b strings.Builder
		b.WriteString("^")
		for _, r := range pattern {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		re = regexp.MustCompile(b.String())
		globCache[pattern] = re
	}
	globMu.Unlock()
	return re.MatchString(s)
}
