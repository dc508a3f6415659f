package apps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

const fieldManager = "keyway"

// csaManagers are the field managers of client-side apply whose fields keyway takes over:
// kubectl apply's, and Argo CD's application controller (its default sync is client-side).
var csaManagers = []string{"kubectl-client-side-apply", "kubectl", "before-first-apply", "argocd-controller"}

// Renderer renders one application's source and lists the secrets the render read. It is
// the caller's, so the daemon renders with exactly the engine, backends and policy the Argo
// CD plugin uses.
type Renderer func(ctx context.Context, r RenderRequest) ([]*manifest.Document, []Input, error)

// Input is one secret a render read: its reference, the version the backend said it read
// (when it names versions) and a hash of what was read (held in memory only).
type Input struct {
	Ref     providers.Ref
	Version string
	Hash    string
}

// SecretReader reads secrets and, where the backend can tell, their current versions
// without their values (*providers.Clients is one).
type SecretReader interface {
	Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error)
	CurrentVersion(ctx context.Context, ref providers.Ref) (string, error)
}

// InputReader opens the backends an application's render reads through — with the
// settings and policy its render has — hands them to use, and closes them after.
type InputReader func(ctx context.Context, r RenderRequest, use func(ctx context.Context, s SecretReader) error) error

// RenderRequest is what to render for an application.
type RenderRequest struct {
	App  *v1alpha1.Application
	Root string // the repository checkout; nothing outside it may be read
	// Paths are the files (a plain directory source, after recurse/include/exclude) or the
	// one directory (Helm chart, kustomization) to render.
	Paths  []string
	Source string // auto, plain, helm or kustomize
	Helm   helm.Options
	Env    map[string]string // spec.source.plugin.env, for the caller's closed policy
}

// Options configure a Daemon.
type Options struct {
	Config *rest.Config
	Git    *gitsource.Cache
	Render Renderer
	// Inputs, when set, lets a poll reuse an application's last render: when neither its
	// revision, its Application nor any secret its render read has changed, nothing is
	// rendered again (no Helm or kustomize build), and each distinct secret is read once.
	Inputs InputReader
	// StateNamespace holds the inventories (one ConfigMap per application) and the
	// repository Secrets.
	StateNamespace string
	// MaxPrune is the share of an application's inventory, in percent, one sync may prune
	// without confirmation (default 50).
	MaxPrune int
	// WaveTimeout ends a wave that does not become healthy (default 5m).
	WaveTimeout time.Duration
	// PollInterval is how often health is checked while waiting (default 1s).
	PollInterval time.Duration
	// AllowRepos are repository URL prefixes child applications may name besides the
	// repositories of the applications given to the daemon.
	AllowRepos []string
	// RepoClustersGenerator lets ApplicationSets found in repositories use the clusters
	// generator (the operator's own sets always may). Off: a repository's set would see
	// every cluster Secret's name, server, labels and annotations.
	RepoClustersGenerator bool
	// ClusterAnnotationsExcluded are annotation key prefixes the clusters generator never
	// hands to a template, besides kubectl's last-applied-configuration (which may hold
	// the Secret's whole config, bearer token included).
	ClusterAnnotationsExcluded []string
	Logger                     *slog.Logger
	Registry                   prometheus.Registerer
	// Sharding, when set, spreads root applications over the replicas (Run only).
	Sharding *Sharding
	// Reload, when set, reads the operator's manifests again each interval (Run): roots
	// added or removed while running are picked up (see Reload).
	Reload func() (Manifests, map[string]error)
	// Workers is how many applications Run syncs side by side (default 10, as Argo CD's
	// operation processors).
	Workers int
	// BeforeSync, when set, is called with each key a worker of Run takes, before its sync:
	// a test hook (a panic there is recovered as any other).
	BeforeSync func(key string)
}

// Daemon syncs applications. A Daemon value is the hub (the cluster of Options.Config,
// which keeps the inventories) or a view of it onto a destination cluster: the views share
// the hub's state and differ in the clients objects are applied with.
type Daemon struct {
	*state
	cluster string // "" for the daemon's own cluster, else the destination server
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	eng     *apply.Cluster // applies to this view's cluster
	caps    *capabilities  // what Helm's .Capabilities says of this view's cluster
}

// newView is the daemon on one cluster: cluster is its server ("" for the hub).
func (st *state) newView(cluster string, kube kubernetes.Interface, dyn dynamic.Interface, dc discovery.DiscoveryInterface) *Daemon {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	d := &Daemon{state: st, cluster: cluster, kube: kube, dyn: dyn, mapper: mapper, caps: &capabilities{dc: dc}}
	d.eng = &apply.Cluster{Kube: kube, Dyn: dyn, Mapper: mapper, FieldManager: fieldManager, HandOver: csaManagers,
		Timeout: st.o.WaveTimeout, Poll: st.o.PollInterval, Log: st.log,
		Wrote: func(verb string, u *unstructured.Unstructured) {
			st.m.writes.WithLabelValues(verb).Inc()
			if verb != "delete" {
				st.noteWrite(u)
			}
		}}
	return d
}

// lockApp waits until no other sync of the named application runs and holds it off until
// the returned function is called. A parent syncs its children inline while a child can be
// queued on its own (drift, a webhook): locks are always taken parent first, so they never
// wait on each other in a circle.
func (st *state) lockApp(name string) func() { return st.locks.Lock(name) }

// owner is application app as the owner of the objects it applies: Argo CD's tracking
// annotation, <app>:<group>/<kind>:<namespace>/<name>.
func owner(app string) apply.Owner {
	return apply.Owner{Annotation: AnnotationTracking,
		ID: func(k apply.Key) string { return trackingID(app, k) },
		Other: func(v string) string {
			if strings.HasPrefix(v, app+":") {
				return ""
			}
			other, _, _ := strings.Cut(v, ":")
			return "application " + other
		}}
}

// state is what every view of the daemon shares.
type state struct {
	o   Options
	hub *Daemon // the daemon's own cluster: inventories, repository and cluster Secrets
	log *slog.Logger
	m   *metrics

	mu       sync.Mutex
	status   map[string]*Status
	apps     map[string]*appEntry // every application known, roots and children
	allowed  []string             // repository URLs (normalised) applications may use
	written  map[string]bool      // resourceVersions this daemon wrote (self-heal ignores their echo)
	retries  map[string]retryState
	projects map[string]*v1alpha1.AppProject
	sets     map[string]*v1alpha1.ApplicationSet // the operator's, from the --app files
	clusters map[string]*clusterView             // destination clusters by server, from cluster Secrets
	refresh  chan string                         // applications a webhook asked to sync now
	ckey     []byte                              // the secret checksum key
	renders  map[string]*renderCache             // the last render of each application, for polls
	shard    *sharder                            // nil: this daemon syncs every application
	queue    *kube.Queue                         // Run's work queue (nil outside Run: sync inline)
	locks    parallel.Keyed                      // one sync of an application at a time
	ops      map[string]*operation               // syncs waiting for a wave's health (Run)
	rechecks map[string]bool                     // queued to look at a waiting operation again
	// progress is when Run last finished a sync (unix nanoseconds); stallAfter is how long
	// it may go without while work waits before /healthz fails.
	progress   atomic.Int64
	stallAfter time.Duration
	// stopping ends when the daemon is asked to stop: a sync in progress finishes the wave
	// it is in and stops before the next.
	stopping context.Context
}

// appEntry is an application and where it came from.
type appEntry struct {
	app       *v1alpha1.Application
	parent    string // "" for a root (an --app manifest)
	root      bool   // the operator's: an --app manifest, or generated by an --app ApplicationSet
	generated bool   // generated by an --app ApplicationSet (synced through it, not as a root)
}

// New returns a daemon for the cluster of o.Config.
func New(o Options) (*Daemon, error) {
	if o.Config == nil || o.Git == nil || o.Render == nil {
		return nil, errors.New("apps: Config, Git and Render are required")
	}
	if o.StateNamespace == "" {
		o.StateNamespace = "keyway-system"
	}
	if o.MaxPrune <= 0 || o.MaxPrune > 100 {
		o.MaxPrune = 50
	}
	if o.WaveTimeout <= 0 {
		o.WaveTimeout = 5 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	st := &state{o: o, log: o.Logger, status: map[string]*Status{}, apps: map[string]*appEntry{}, written: map[string]bool{},
		retries: map[string]retryState{}, stopping: context.Background(), projects: map[string]*v1alpha1.AppProject{}, sets: map[string]*v1alpha1.ApplicationSet{},
		clusters: map[string]*clusterView{}, refresh: make(chan string, 1024), renders: map[string]*renderCache{}, ops: map[string]*operation{}, rechecks: map[string]bool{}}
	st.m = newMetrics(o.Registry)
	if o.Registry != nil {
		o.Registry.MustRegister(st.panicCounter())
	}
	d := st.newView("", kube, dyn, dc)
	st.hub = d
	for _, r := range o.AllowRepos {
		d.allowed = append(d.allowed, strings.ToLower(r))
	}
	return d, nil
}

// Add registers root applications (the operator's --app manifests). Their repositories
// are the ones child applications may use without AllowRepos.
func (d *Daemon) Add(apps ...*v1alpha1.Application) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range apps {
		if err := a.Validate(); err != nil {
			return err
		}
		if e, ok := d.apps[a.Name]; ok && e.root {
			return fmt.Errorf("two applications named %s", a.Name)
		}
		d.apps[a.Name] = &appEntry{app: a, root: true}
		d.allowed = append(d.allowed, gitsource.NormalizeURL(a.Spec.Source.RepoURL))
	}
	return nil
}

// Roots returns the root applications' names in the order added.
func (d *Daemon) roots() []*v1alpha1.Application {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*v1alpha1.Application
	for _, e := range d.apps {
		if e.root && !e.generated {
			out = append(out, e.app)
		}
	}
	sortApps(out)
	return out
}

// repoAllowed reports whether an application may use repoURL: a root may use any (the
// operator wrote it), a child only its roots' repositories and AllowRepos prefixes.
func (d *Daemon) repoAllowed(url string, root bool) bool {
	if root {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := gitsource.NormalizeURL(url)
	for _, a := range d.allowed {
		if n == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(n, a)) || strings.HasPrefix(n, a+"/") {
			return true
		}
	}
	return false
}

// source resolves an application's repository and checks it may be used: a local path
// only from the operator (a root's own URL or a --git-rewrite target), never from a
// repository.
func (d *Daemon) source(ctx context.Context, a *v1alpha1.Application, root bool) (gitsource.Checkout, string, error) {
	src := *a.Spec.Source
	canon, err := gitsource.CanonicalURL(src.RepoURL)
	if err != nil {
		return gitsource.Checkout{}, "", err
	}
	src.RepoURL = canon
	if !d.repoAllowed(src.RepoURL, root) {
		return gitsource.Checkout{}, "", fmt.Errorf("repository %s: a child application may use only its root applications' repositories (or --allow-repo)", gitsource.Redact(src.RepoURL))
	}
	url := d.o.Git.Resolve(src.RepoURL)
	if gitsource.IsLocal(url) && !root && !d.o.Git.Rewritten(src.RepoURL) {
		return gitsource.Checkout{}, "", fmt.Errorf("repository %s: a local path is allowed only in the daemon's own --app manifests or through --git-rewrite", src.RepoURL)
	}
	co, err := d.o.Git.Fetch(ctx, url, src.TargetRevision)
	if err != nil {
		return gitsource.Checkout{}, "", err
	}
	path := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(src.Path, "/")))
	if path == ".." || strings.HasPrefix(path, ".."+string(filepath.Separator)) {
		return gitsource.Checkout{}, "", fmt.Errorf("spec.source.path %q leaves the repository", src.Path)
	}
	return co, filepath.Join(co.Dir, path), nil
}
