package apps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// Sync states, as Argo CD names them.
const (
	Synced    = "Synced"
	OutOfSync = "OutOfSync"
	Unknown   = "Unknown"
)

// Status is what the daemon knows of an application after its last sync. It holds names,
// states and messages — never an object's content.
type Status struct {
	Name     string `json:"name"`
	Parent   string `json:"parent,omitempty"`
	Cluster  string `json:"cluster,omitempty"`
	Revision string `json:"revision,omitempty"`
	// Reason is why the application last applied: revision (a new commit), application (its
	// Application changed), secrets (a secret its render read changed), drift (selfHeal),
	// new (never synced), explicit.
	Reason    string             `json:"reason,omitempty"`
	Sync      string             `json:"sync"`
	Health    apply.HealthStatus `json:"health"`
	Message   string             `json:"message,omitempty"`
	Applied   int                `json:"applied"`
	Unchanged int                `json:"unchanged"`
	Pruned    int                `json:"pruned"`
	Held      string             `json:"held,omitempty"` // why a prune waits for confirmation
	Children  []string           `json:"children,omitempty"`
	Resources []ResourceStatus   `json:"resources,omitempty"`
	SyncedAt  time.Time          `json:"syncedAt"`
	Duration  string             `json:"duration"`

	// Operation is the sync in progress, while it waits for a wave's health.
	Operation *Operation `json:"operation,omitempty"`

	Diffs []apply.ObjectDiff `json:"-"` // DiffOnly: what a sync would change

	failed bool // the sync failed
	final  bool // …in a way only the operator can change (held, empty render)
}

// Operation is a sync that applied its waves up to Wave and waits for that wave to be
// healthy (Argo CD's operation state Running): a state the daemon comes back to, not a
// worker held.
type Operation struct {
	Phase        string    `json:"phase"` // Running
	Wave         int       `json:"wave"`
	StartedAt    time.Time `json:"startedAt"`
	WaitingSince time.Time `json:"waitingSince"`
}

// ResourceStatus is one object of an application.
type ResourceStatus struct {
	Group     string             `json:"group,omitempty"`
	Kind      string             `json:"kind"`
	Namespace string             `json:"namespace,omitempty"`
	Name      string             `json:"name"`
	Status    string             `json:"status"` // Synced, OutOfSync, Pruned, PruneSkipped
	Health    apply.HealthStatus `json:"health,omitempty"`
	Message   string             `json:"message,omitempty"`
}

// Failed reports whether the sync (or diff) failed: a render, a refusal, a cluster.
func (s *Status) Failed() bool { return s.failed }

// OK reports whether the application is Synced and Healthy.
func (s *Status) OK() bool { return s.Sync == Synced && s.Health == apply.Healthy }

// Statuses returns every application's status, sorted by name.
func (d *Daemon) Statuses() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Status, 0, len(d.status))
	for _, s := range d.status {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (d *Daemon) setStatus(s *Status) {
	d.mu.Lock()
	d.status[s.Name] = s
	d.mu.Unlock()
	d.m.health.WithLabelValues(s.Name).Set(float64(s.Health.Rank()))
	synced := 0.0
	if s.Sync == Synced {
		synced = 1
	}
	d.m.synced.WithLabelValues(s.Name).Set(synced)
}

// stalled says why the loop is stuck — work waits and no sync has finished within
// stallAfter — or "". A liveness probe on /healthz then restarts the daemon, which gives up
// its Lease to a replica that can make progress; a standby (not running the loop) is never
// stalled.
func (d *Daemon) stalled(now time.Time) string {
	q := d.runQueue()
	last := d.progress.Load()
	if q == nil || last == 0 || d.stallAfter <= 0 {
		return ""
	}
	if waited := now.Sub(time.Unix(0, last)); q.Len() > 0 && waited > d.stallAfter {
		return fmt.Sprintf("stalled: no sync has finished for %s while %d application(s) wait (bound %s)\n", waited.Round(time.Second), q.Len(), d.stallAfter)
	}
	return ""
}

// Handler serves /healthz (503 once the loop is stalled), /apps (JSON statuses) and /metrics (when gatherer is set).
func (d *Daemon) Handler(gatherer http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := d.stalled(time.Now()); msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /apps", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.Statuses())
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", gatherer)
	}
	return mux
}

type metrics struct {
	syncs    *prometheus.CounterVec
	writes   *prometheus.CounterVec
	duration prometheus.Histogram
	health   *prometheus.GaugeVec
	synced   *prometheus.GaugeVec
	webhooks *prometheus.CounterVec
	renders  *prometheus.CounterVec
	// secretChecks counts how a poll settled whether a secret changed.
	secretChecks *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_daemon_syncs_total",
			Help: "Application syncs by result: noop (nothing to write), synced, failed, held, outofsync (drift left for a manual or non-self-healing app)."}, []string{"result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_daemon_writes_total",
			Help: "Write requests the daemon made to the cluster, by kind of write: apply, create, delete, inventory."}, []string{"op"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keyway_daemon_sync_duration_seconds",
			Help: "Time one application's sync took, waits for health included.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "keyway_daemon_app_health",
			Help: "Application health: 0 Healthy, 1 Suspended, 2 Progressing, 3 Missing, 4 Degraded, 5 Unknown."}, []string{"app"}),
		synced: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "keyway_daemon_app_synced",
			Help: "1 when the application is Synced."}, []string{"app"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_daemon_webhooks_total",
			Help: "Webhook requests by outcome: accepted, ignored (not a push), refused (signature or token)."}, []string{"result"}),
		secretChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_daemon_secret_checks_total",
			Help: "Secrets a poll looked at to learn whether a render can be reused, by how: version (the backend named its current version; no value read) or value (read again and compared)."}, []string{"by"}),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_daemon_renders_total",
			Help: "Application renders by result: rendered, or reused (revision, Application and every secret read unchanged)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.syncs, m.writes, m.duration, m.health, m.synced, m.webhooks, m.renders, m.secretChecks)
	}
	return m
}

func sortApps(apps []*v1alpha1.Application) {
	slices.SortFunc(apps, func(a, b *v1alpha1.Application) int { return strings.Compare(a.Name, b.Name) })
}

// panicCounter reports the syncs of Run's queue that panicked.
func (st *state) panicCounter() prometheus.Collector {
	return kube.PanicCounter("keyway_daemon_panics_total", "Syncs that panicked (recovered; the application is retried with back-off).", func() *kube.Queue {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.queue
	})
}
