package apps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// LoadEach reads the operator's manifests as Load does, but a file that cannot be read or
// holds a refused manifest is left out and reported by its path, so one bad file does not
// keep the daemon from syncing the others.
func LoadEach(paths []string) (Manifests, map[string]error) {
	var m Manifests
	refused := map[string]error{}
	for _, p := range paths {
		files, err := appFiles(p)
		if err != nil {
			refused[p] = err
			continue
		}
		for _, f := range files {
			var one Manifests
			if err := one.read(f); err != nil {
				refused[f] = err
				continue
			}
			m.Apps = append(m.Apps, one.Apps...)
			m.Projects = append(m.Projects, one.Projects...)
			m.Sets = append(m.Sets, one.Sets...)
		}
	}
	return m, refused
}

// refusedPrefix names a refused --app file in the statuses.
const refusedPrefix = "--app "

// Reload makes m the daemon's root applications, projects and ApplicationSets, as the
// operator's files now say: new ones are added, changed ones replaced. When every file was
// read (refused is empty), roots and sets that left the files are removed as Argo CD
// removes a deleted Application or ApplicationSet — their inventories go, their objects only
// with resources-finalizer.argocd.argoproj.io; while a file is refused nothing is removed (it
// may hold them). A refused file, and an application whose name another file took first,
// shows in the statuses as failed, by its path.
func (d *Daemon) Reload(ctx context.Context, m Manifests, refused map[string]error) {
	refused = maps.Clone(refused)
	if refused == nil {
		refused = map[string]error{}
	}
	d.mu.Lock()
	keep := map[string]bool{}
	projects := map[string]*v1alpha1.AppProject{}
	for _, p := range m.Projects {
		if _, dup := projects[p.Name]; dup || p.Name == "" {
			refused["AppProject "+p.Name] = fmt.Errorf("AppProject %q: no name, or a second one of that name", p.Name)
			continue
		}
		projects[p.Name] = p
	}
	d.projects = projects
	for _, a := range m.Apps {
		if keep[a.Name] {
			refused["Application "+a.Name] = fmt.Errorf("two applications named %s: the first one read is synced", a.Name)
			continue
		}
		keep[a.Name] = true
		if e, ok := d.apps[a.Name]; ok && !e.root {
			refused["Application "+a.Name] = fmt.Errorf("application %s already belongs to %s", a.Name, orRoot(e))
			continue
		}
		d.apps[a.Name] = &appEntry{app: a, root: true}
	}
	sets := map[string]*v1alpha1.ApplicationSet{}
	for _, s := range m.Sets {
		if _, dup := sets[s.Name]; dup || s.Name == "" {
			refused["ApplicationSet "+s.Name] = fmt.Errorf("ApplicationSet %q: no name, or a second one of that name", s.Name)
			continue
		}
		sets[s.Name] = s
	}
	var goneApps []string
	var goneSets []*v1alpha1.ApplicationSet
	for name, e := range d.apps {
		if e.root && !e.generated && !keep[name] {
			goneApps = append(goneApps, name)
		}
	}
	for name, s := range d.sets {
		if _, ok := sets[name]; !ok {
			goneSets = append(goneSets, s)
		}
	}
	d.sets = sets
	d.allowed = d.allowedRepos()
	for name := range d.status {
		if strings.HasPrefix(name, refusedPrefix) {
			delete(d.status, name)
		}
	}
	d.mu.Unlock()
	for what, err := range refused {
		d.log.Error("an --app manifest is refused; the others are synced", "file", what, "error", err)
		d.setStatus(&Status{Name: refusedPrefix + what, Sync: Unknown, Health: "Degraded", Message: err.Error(), failed: true, final: true})
	}
	if len(refused) > 0 {
		return
	}
	slices.Sort(goneApps)
	for _, name := range goneApps {
		d.log.Info("application left the --app files: removing it", "app", name)
		if err := d.removeChild(ctx, "", name, false); err != nil {
			d.log.Warn("removing an application", "app", name, "error", err)
		}
	}
	for _, s := range goneSets {
		d.log.Info("ApplicationSet left the --app files: removing its applications", "appset", s.Name)
		d.removeSet(ctx, s)
	}
}

// allowedRepos is what child applications may use: the roots' repositories, the operator's
// ApplicationSets' git generators and --allow-repo. Called with d.mu held.
func (d *Daemon) allowedRepos() []string {
	var out []string
	for _, r := range d.o.AllowRepos {
		out = append(out, strings.ToLower(r))
	}
	for _, e := range d.apps {
		if e.root && !e.generated && e.app.Spec.Source != nil {
			out = append(out, gitsource.NormalizeURL(e.app.Spec.Source.RepoURL))
		}
	}
	for _, s := range d.sets {
		for _, g := range s.Spec.Generators {
			if g.Git != nil {
				out = append(out, gitsource.NormalizeURL(g.Git.RepoURL))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// removeSet removes the applications an ApplicationSet generated, as its deletion does in
// Argo CD (their objects stay with preserveResourcesOnDeletion), and its inventory.
func (d *Daemon) removeSet(ctx context.Context, s *v1alpha1.ApplicationSet) {
	key := setKey(s.Name)
	inv, err := d.readInventory(ctx, key)
	if err != nil {
		d.log.Warn("applicationset inventory", "appset", s.Name, "error", err)
		return
	}
	preserve := s.Spec.SyncPolicy != nil && s.Spec.SyncPolicy.PreserveResourcesOnDeletion
	failed := false
	for _, c := range inv.Children {
		if err := d.removeChild(ctx, key, c, preserve); err != nil {
			d.log.Warn("removing a generated application", "appset", s.Name, "app", c, "error", err)
			failed = true // the set's inventory stays, naming what is left
		}
	}
	if inv.exists && !failed {
		if err := d.deleteInventory(ctx, key); err != nil {
			d.log.Warn("deleting an ApplicationSet's inventory", "appset", s.Name, "error", err)
		}
	}
	d.mu.Lock()
	delete(d.status, "ApplicationSet/"+s.Name)
	d.mu.Unlock()
}
