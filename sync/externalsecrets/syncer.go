package externalsecrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/yaml"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/tmplfuncs"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/awssm"
	"github.com/keyway-dev/keyway/providers/gcpsm"
	"github.com/keyway-dev/keyway/providers/vault"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// Resources the syncer reads.
var (
	ExternalSecretGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
	SecretStoreGVR    = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"}
	// ClusterSecretStoreGVR is cluster-scoped.
	ClusterSecretStoreGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clustersecretstores"}
)

// AnnotationAdopt on an existing Secret lets an ExternalSecret with creationPolicy Owner
// take it over; without it such a Secret is never silently overwritten.
const AnnotationAdopt = "keyway.dev/adopt"

// AnnotationCreatedBy marks a Secret that an ExternalSecret with creationPolicy Orphan
// created: the ExternalSecret's UID. Orphan means "do not own", not "take over": such an
// ExternalSecret updates only the Secret it created (or one annotated AnnotationAdopt).
const AnnotationCreatedBy = "keyway.dev/created-by-externalsecret"

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	// ControllerClass is the spec.controller value of the stores this syncer handles (ESO's
	// controller class); empty handles stores that name none.
	ControllerClass string
	Workers         int
	Logger          *slog.Logger
	Registry        *prometheus.Registry
	// Registry of backends; nil means Vault, Secrets Manager and Parameter Store.
	Backends *providers.Registry
	// AWSEndpoint overrides the AWS endpoint for every store (VPC endpoints, tests): an
	// operator's setting, never a store's.
	AWSEndpoint string
	// GCPEndpoint, GCPCAFile and GCPTokenURL override GCP Secret Manager's endpoint, the TLS
	// roots for it and the token endpoint service-account keys may name (tests, private
	// endpoints): the operator's settings, never a store's.
	GCPEndpoint, GCPCAFile, GCPTokenURL string
	// VaultServers are the Vault addresses (URL prefixes) a namespaced SecretStore may name.
	// ClusterSecretStores are the operator's and may name any; a SecretStore is its
	// namespace's, so by default it names none and an address not listed is refused.
	VaultServers []string
	// AmbientCredentials lets a namespaced SecretStore without credentials use the
	// controller's own cloud identity (the AWS SDK's default chain, GCP's Application Default
	// Credentials). Off by default: only ClusterSecretStores may.
	AmbientCredentials bool
	// StoreQPS and StoreBurst bound the backend reads each store makes (a read shared with
	// other ExternalSecrets counts once); a store's keyway.dev/qps and keyway.dev/burst
	// annotations override them for it. Zero means DefaultStoreQPS and DefaultStoreBurst.
	StoreQPS   float64
	StoreBurst int
}

// Per-store read limits by default, and the annotations that set a store's own.
const (
	DefaultStoreQPS      = 50
	DefaultStoreBurst    = 100
	AnnotationStoreQPS   = "keyway.dev/qps"
	AnnotationStoreBurst = "keyway.dev/burst"
)

// Syncer is the ExternalSecret controller: it reads values through SecretStores and keeps
// target Secrets up to date, with one backend read per distinct secret and principal per
// refresh window across all ExternalSecrets.
type Syncer struct {
	opts  SyncerOptions
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	log   *slog.Logger
	rec   record.EventRecorder
	bcast record.EventBroadcaster
	queue *ctl.Queue
	pool  *providers.Pool

	esInf     cache.SharedIndexInformer
	storeInfs map[schema.GroupVersionResource]cache.SharedIndexInformer
	factory   dynamicinformer.DynamicSharedInformerFactory
	secInf    cache.SharedIndexInformer
	secrets   corelisters.SecretLister

	cacheMu sync.Mutex
	fetched map[string]*fetchEntry // principal + ref → the last read

	limitMu  sync.Mutex
	limiters map[string]storeLimiter // store kind/namespace/name → its read limiter

	timersMu sync.Mutex
	timers   map[string]*time.Timer // next refresh per ExternalSecret
	forced   map[string]string      // the force-sync annotation value last acted on

	tokensMu sync.Mutex
	tokens   map[string]saToken // requested service-account tokens, by account and audiences

	reads    *prometheus.CounterVec
	syncs    *prometheus.CounterVec
	errs     *prometheus.CounterVec
	hits     prometheus.Counter
	duration prometheus.Histogram
}

type fetchEntry struct {
	done   chan struct{}
	secret providers.Secret
	err    error
	at     time.Time
	// Guarded by cacheMu: when the entry last served, and the oldest age any asker
	// accepted (a read older than that serves nobody; 0 when an asker takes any age).
	used   time.Time
	window time.Duration
}

// Unused shared reads are dropped: one older than every asker's window at once, any after
// idleRead without an asker (an ExternalSecret that is gone, or one read once).
const (
	pruneEvery = 5 * time.Minute
	idleRead   = 24 * time.Hour
)

// note records that an asker accepting reads made at or after notBefore used e.
func (e *fetchEntry) note(now, notBefore time.Time) {
	e.used = now
	w := now.Sub(notBefore)
	if notBefore.IsZero() {
		w = idleRead
	}
	e.window = max(e.window, w)
}

// prune drops shared reads no asker can use any more; it returns how many are left.
func (s *Syncer) prune(now time.Time) int {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for k, e := range s.fetched {
		select {
		case <-e.done:
		default:
			continue // in flight
		}
		if now.Sub(e.at) > e.window || now.Sub(e.used) > idleRead {
			delete(s.fetched, k)
		}
	}
	return len(s.fetched)
}

// NewSyncer builds a Syncer on the cluster of cfg.
func NewSyncer(cfg *rest.Config, o SyncerOptions) (*Syncer, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Backends == nil {
		o.Backends = providers.NewRegistry(vault.Provider{}, awssm.Provider{}, awssm.SSMProvider{}, gcpsm.Provider{})
	}
	s := &Syncer{opts: o, kube: kube, dyn: dyn, log: o.Logger, queue: ctl.NewQueue(), fetched: map[string]*fetchEntry{}, timers: map[string]*time.Timer{}, storeInfs: map[schema.GroupVersionResource]cache.SharedIndexInformer{}, forced: map[string]string{}, tokens: map[string]saToken{}, limiters: map[string]storeLimiter{},
		pool: providers.NewPool(o.Backends, o.Logger, time.Hour)}
	s.reads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_backend_reads_total", Help: "Backend reads by provider and outcome (a cache hit is not a read)."}, []string{"provider", "operation", "outcome"})
	s.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_syncs_total", Help: "ExternalSecret syncs by result."}, []string{"result"})
	s.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_sync_errors_total", Help: "Failed ExternalSecret syncs by kind of problem (config, not-found, permission-denied, backend-unavailable, other)."}, []string{"reason"})
	s.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "keyway_syncer_cache_hits_total", Help: "Values served from a read shared with other ExternalSecrets instead of the backend."})
	s.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keyway_syncer_reconcile_duration_seconds", Help: "Time to sync one ExternalSecret.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	o.Registry.MustRegister(s.reads, s.syncs, s.errs, s.hits, s.duration, readyCollector{s})
	s.bcast = record.NewBroadcaster()
	s.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	s.rec = s.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "keyway-syncer"})

	s.factory = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	s.esInf = s.factory.ForResource(ExternalSecretGVR).Informer()
	_, _ = s.esInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.enqueue(obj) },
		UpdateFunc: func(o, n any) {
			if o.(metav1.Object).GetGeneration() != n.(metav1.Object).GetGeneration() ||
				o.(metav1.Object).GetAnnotations()["force-sync"] != n.(metav1.Object).GetAnnotations()["force-sync"] {
				s.enqueue(n)
			}
		},
	})
	// Stores are validated when they appear or change: their Ready condition says whether
	// their credentials work before any ExternalSecret depends on them.
	for prefix, gvr := range map[string]schema.GroupVersionResource{storePrefix: SecretStoreGVR, clusterStorePrefix: ClusterSecretStoreGVR} {
		inf := s.factory.ForResource(gvr).Informer()
		s.storeInfs[gvr] = inf
		kind := map[string]string{storePrefix: "SecretStore", clusterStorePrefix: "ClusterSecretStore"}[prefix]
		enqueue := func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				s.queue.Add(prefix+key, ctl.High)
			}
			// ExternalSecrets waiting for this store need not wait for their next refresh.
			m := obj.(metav1.Object)
			for _, item := range s.esInf.GetStore().List() {
				es := item.(*unstructured.Unstructured)
				name, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "name")
				k, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "kind")
				if k == "" {
					k = "SecretStore"
				}
				if name == m.GetName() && k == kind && (kind == "ClusterSecretStore" || es.GetNamespace() == m.GetNamespace()) {
					s.enqueue(es)
				}
			}
		}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: enqueue,
			UpdateFunc: func(o, n any) {
				if o.(metav1.Object).GetGeneration() != n.(metav1.Object).GetGeneration() {
					enqueue(n)
				}
			},
		})
	}
	// Only targets are read from the cache: other Secrets keep their metadata only.
	trim := func(obj any) (any, error) {
		if sc, ok := obj.(*corev1.Secret); ok && sc.Annotations[AnnotationAdopt] != "true" && !ownedByExternalSecret(sc) {
			sc.Data, sc.StringData, sc.ManagedFields = nil, nil, nil
			delete(sc.Annotations, corev1.LastAppliedConfigAnnotation)
		}
		return obj, nil
	}
	s.secInf = ctl.SecretInformer(kube, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, trim)
	s.secrets = corelisters.NewSecretLister(s.secInf.GetIndexer())
	// A target Secret edited or deleted by hand is put back from what was last read.
	ctl.WatchOwned(s.secInf, "", "ExternalSecret", func(key string) { s.queue.Add(key, ctl.High) })
	return s, nil
}

func ownedByExternalSecret(sc *corev1.Secret) bool {
	for _, ref := range sc.OwnerReferences {
		if ref.Kind == "ExternalSecret" && strings.HasPrefix(ref.APIVersion, esv1.GroupVersion.Group+"/") {
			return true
		}
	}
	return false
}

func (s *Syncer) enqueue(obj any) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		s.queue.Add(key, ctl.High)
	}
}

// Run starts the informers and reconciles until ctx ends; only the leader runs it.
func (s *Syncer) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	defer s.bcast.Shutdown()
	defer s.pool.Close()
	s.factory.Start(ctx.Done())
	go s.secInf.RunWithContext(ctx)
	synced := []cache.InformerSynced{s.esInf.HasSynced, s.secInf.HasSynced}
	for _, inf := range s.storeInfs {
		synced = append(synced, inf.HasSynced)
	}
	for _, synced := range synced {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			return errors.New("informer caches did not sync")
		}
	}
	for range s.opts.Workers {
		go func() {
			for {
				key, ok := s.queue.Get()
				if !ok {
					return
				}
				var next time.Duration
				var err error
				switch {
				case strings.HasPrefix(key, storePrefix):
					err = s.validateStore(ctx, SecretStoreGVR, strings.TrimPrefix(key, storePrefix))
				case strings.HasPrefix(key, clusterStorePrefix):
					err = s.validateStore(ctx, ClusterSecretStoreGVR, strings.TrimPrefix(key, clusterStorePrefix))
				default:
					start := time.Now()
					next, err = s.reconcile(ctx, key)
					s.duration.Observe(time.Since(start).Seconds())
				}
				switch {
				case apierrors.IsConflict(err), errors.Is(err, errBackendDown):
					s.queue.Retry(key) // reported in status already
				case err != nil:
					s.log.Warn("sync failed; retrying", "externalsecret", key, "error", err)
					s.queue.Retry(key)
				default:
					s.queue.Forget(key)
					s.schedule(key, next)
				}
				s.queue.Done(key)
			}
		}()
	}
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			s.prune(now)
		}
	}
}

// schedule queues key's next refresh after d, spread ±10 % so a restart or a shared
// interval makes no storm; it replaces an earlier schedule, and d = 0 cancels it.
func (s *Syncer) schedule(key string, d time.Duration) {
	s.timersMu.Lock()
	defer s.timersMu.Unlock()
	if t, ok := s.timers[key]; ok {
		t.Stop()
		delete(s.timers, key)
	}
	if d <= 0 {
		return
	}
	jittered := time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	s.timers[key] = time.AfterFunc(jittered, func() { s.queue.Add(key, ctl.Low) })
}

// reconcile syncs one ExternalSecret and returns when to refresh it (0: not again).
func (s *Syncer) reconcile(ctx context.Context, key string) (time.Duration, error) {
	item, exists, err := s.esInf.GetStore().GetByKey(key)
	if err != nil || !exists {
		return 0, nil
	}
	u := item.(*unstructured.Unstructured)
	var es esv1.ExternalSecret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &es); err != nil {
		return 0, s.fail(ctx, u, refusal{fmt.Sprintf("the ExternalSecret is malformed: %v", err)})
	}
	refresh := time.Hour
	if es.Spec.RefreshInterval != nil {
		refresh = es.Spec.RefreshInterval.Duration
	}
	store, err := s.store(ctx, &es)
	if errors.Is(err, errNotOurs) {
		return 0, nil
	}
	if err == nil {
		err = checkSpec(&es)
	}
	if err != nil {
		return refresh, s.fail(ctx, u, err)
	}
	switch es.Spec.RefreshPolicy {
	case esv1.RefreshPolicyOnChange:
		refresh = 0 // read again only when the spec changes (or on force-sync)
	case esv1.RefreshPolicyCreatedOnce:
		// Written once: while its target exists (and it has synced), nothing is read again.
		if _, err := s.secrets.Secrets(es.Namespace).Get(targetName(&es)); err == nil && syncedGeneration(u) != 0 {
			return 0, nil
		}
		refresh = 0
	}
	// Values read within the refresh window serve (within 0.8 of it: a scheduled refresh
	// comes at least 0.9 of it after the last, so it always reads afresh); a new force-sync
	// value asks for reads made from now on (still shared by everything forced at once).
	notBefore := time.Now().Add(-refresh * 8 / 10)
	if refresh == 0 {
		notBefore = time.Time{}
	}
	// A sync that is not a refresh (the echo of the syncer's own Secret write, a drift
	// repair) leaves refreshTime alone: status is written when it says something new.
	refreshedSince := time.Now().Add(-refresh * 8 / 10)
	if refresh == 0 {
		refreshedSince = time.Time{} // synced once: only a missing refreshTime is due
	}
	changed := u.GetGeneration() != syncedGeneration(u)
	due := changed || refreshedBefore(u, refreshedSince)
	if changed && refresh == 0 {
		// Without periodic refreshes, a new or changed spec reads afresh (reads of the last
		// moments still serve: everything changed at once shares them).
		notBefore = time.Now().Add(-changeWindow)
	}
	if fs := es.Annotations["force-sync"]; fs != "" {
		s.timersMu.Lock()
		if s.forced[key] != fs {
			s.forced[key] = fs
			notBefore = forcedAt(fs)
			due = true
		}
		s.timersMu.Unlock()
	}
	data, gone, err := s.values(ctx, store, &es, notBefore)
	if err == nil && gone > 0 && gone == len(es.Spec.Data)+len(es.Spec.DataFrom) && es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyDelete {
		return refresh, s.deleteTarget(ctx, u, &es)
	}
	if err != nil {
		if ferr := s.fail(ctx, u, err); ferr != nil {
			return 0, ferr
		}
		if errors.Is(err, providers.ErrUnavailable) {
			// The backend is down: the last good Secret stays; try again with back-off
			// (capped by the queue's limiter) rather than at the next refresh.
			return 0, errBackendDown
		}
		return refresh, nil
	}
	if err := s.writeTarget(ctx, u, &es, data); err != nil {
		if apierrors.IsInvalid(err) {
			err = refusal{"the API server refused the target Secret: " + invalidFields(err)}
		}
		var refused refusal
		if errors.As(err, &refused) {
			return refresh, s.fail(ctx, u, err)
		}
		return 0, err
	}
	s.syncs.WithLabelValues("synced").Inc()
	if !due && readyIs(u, corev1.ConditionTrue, esv1.ReasonSecretSynced, "secret synced") {
		return refresh, nil
	}
	if err := s.setReady(ctx, u, corev1.ConditionTrue, esv1.ReasonSecretSynced, "secret synced"); err != nil {
		return 0, err
	}
	return refresh, nil
}

// syncedGeneration is the generation the status last reported on (-1 when none).
func syncedGeneration(u *unstructured.Unstructured) int64 {
	v, _, _ := unstructured.NestedString(u.Object, "status", "syncedResourceVersion")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// refreshedBefore reports whether the status's refreshTime is missing or older than t.
func refreshedBefore(u *unstructured.Unstructured, t time.Time) bool {
	v, _, _ := unstructured.NestedString(u.Object, "status", "refreshTime")
	at, err := time.Parse(time.RFC3339, v)
	return err != nil || at.Before(t)
}

// forcedAt is when a force-sync was asked for: its value as a time (Unix seconds, as
// `date +%s` writes it, or RFC 3339), so every ExternalSecret forced together shares the
// reads made since; a value that is not a time means now.
func forcedAt(v string) time.Time {
	now := time.Now()
	t, err := time.Parse(time.RFC3339Nano, v)
	if n, perr := strconv.ParseInt(v, 10, 64); perr == nil && n > 0 {
		t, err = time.Unix(n, 0), nil
	}
	if err != nil || t.After(now) {
		return now
	}
	return t
}

// changeWindow is how old a shared read may be to serve a new or changed ExternalSecret that
// is not refreshed periodically.
const changeWindow = 2 * time.Second

// checkSpec refuses what keyway does not implement, by field, rather than ignoring it.
func checkSpec(es *esv1.ExternalSecret) error {
	switch es.Spec.RefreshPolicy {
	case "", esv1.RefreshPolicyPeriodic, esv1.RefreshPolicyOnChange, esv1.RefreshPolicyCreatedOnce:
	default:
		return refusal{fmt.Sprintf("refreshPolicy %q: want Periodic, OnChange or CreatedOnce", es.Spec.RefreshPolicy)}
	}
	if t := es.Spec.Target.Template; t != nil && t.EngineVersion != "" && t.EngineVersion != "v2" {
		return refusal{fmt.Sprintf("target.template.engineVersion %q: keyway implements v2 only", t.EngineVersion)}
	}
	for i, d := range es.Spec.Data {
		if d.RemoteRef.MetadataPolicy == "Fetch" {
			return refusal{fmt.Sprintf("data[%d].remoteRef.metadataPolicy Fetch is not supported", i)}
		}
	}
	return nil
}

func targetName(es *esv1.ExternalSecret) string {
	if es.Spec.Target.Name != "" {
		return es.Spec.Target.Name
	}
	return es.Name
}

// unicodeEscape is ESO's Unicode conversion of key names: _UXXXX_ is the character U+XXXX.
var unicodeEscape = regexp.MustCompile(`_U([0-9a-fA-F]{4})_`)

// convertKey applies a conversion strategy to a key found by extract or find.
func convertKey(k string, strategy esv1.ExternalSecretConversionStrategy) string {
	if strategy != "Unicode" {
		return k
	}
	return unicodeEscape.ReplaceAllStringFunc(k, func(m string) string {
		n, _ := strconv.ParseUint(m[2:6], 16, 32)
		return string(rune(n))
	})
}

// refusal is a sync failure that is the ExternalSecret's to fix, reported in its status.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }

// Queue keys of stores carry a prefix; ExternalSecrets' are plain namespace/name.
const (
	storePrefix        = "store:"
	clusterStorePrefix = "clusterstore:"
)

var (
	errNotOurs     = errors.New("the store belongs to another controller class")
	errBackendDown = errors.New("backend unavailable")
)

// storeConfig is a store resolved to a backend and its settings.
type storeConfig struct {
	backend  string
	settings providers.Settings
	mount    string // Vault KV mount keys are relative to
	project  string // GCP project (and location) keys are names in
	location string
	fake     map[string]string
	limiter  *rate.Limiter // the store's backend reads
}

// wait takes one read from the store's limit.
func (st *storeConfig) wait(ctx context.Context) error {
	if st.limiter == nil {
		return nil
	}
	if err := st.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("%w: waiting for the store's read limit: %v", errBackendDown, err)
	}
	return nil
}

// store reads the ExternalSecret's SecretStore or ClusterSecretStore and turns it into
// backend settings. A SecretStore's credentials come from its own namespace only; a
// ClusterSecretStore names theirs, and its conditions decide which namespaces may use it.
func (s *Syncer) store(ctx context.Context, es *esv1.ExternalSecret) (*storeConfig, error) {
	ref := es.Spec.SecretStoreRef
	// Stores come from the informers' caches (a store that appears later re-queues the
	// ExternalSecrets that name it).
	var gvr schema.GroupVersionResource
	var key, what string
	switch ref.Kind {
	case "", "SecretStore":
		gvr, key, what = SecretStoreGVR, es.Namespace+"/"+ref.Name, fmt.Sprintf("SecretStore %s/%s", es.Namespace, ref.Name)
	case "ClusterSecretStore":
		gvr, key, what = ClusterSecretStoreGVR, ref.Name, fmt.Sprintf("ClusterSecretStore %s", ref.Name)
	default:
		return nil, refusal{fmt.Sprintf("secretStoreRef.kind %q is not SecretStore or ClusterSecretStore", ref.Kind)}
	}
	item, exists, err := s.storeInfs[gvr].GetStore().GetByKey(key)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, refusal{what + " does not exist"}
	}
	u := item.(*unstructured.Unstructured)
	var st esv1.SecretStore
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &st); err != nil {
		return nil, refusal{fmt.Sprintf("%s is malformed: %v", what, err)}
	}
	if st.Spec.Controller != s.opts.ControllerClass {
		return nil, errNotOurs
	}
	if ref.Kind == "ClusterSecretStore" {
		if err := s.admitted(ctx, &st, es.Namespace); err != nil {
			return nil, err
		}
	}
	cfg, err := s.resolve(ctx, what, &st)
	if err != nil {
		return nil, err
	}
	if cfg.limiter, err = s.limiter(gvr.Resource+"/"+key, what, st.Annotations); err != nil {
		return nil, err
	}
	return cfg, nil
}

type storeLimiter struct {
	qps     float64
	burst   int
	limiter *rate.Limiter
}

// limiter is the store's read limiter: the controller's limits, or the store's annotations.
// It lives as long as the store's limits stay the same, so every ExternalSecret of the store
// shares it.
func (s *Syncer) limiter(id, what string, ann map[string]string) (*rate.Limiter, error) {
	qps, burst := s.opts.StoreQPS, s.opts.StoreBurst
	if qps <= 0 {
		qps = DefaultStoreQPS
	}
	if burst <= 0 {
		burst = DefaultStoreBurst
	}
	if v, ok := ann[AnnotationStoreQPS]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, refusal{fmt.Sprintf("%s: annotation %s %q: want a positive number of reads per second", what, AnnotationStoreQPS, v)}
		}
		qps = f
	}
	if v, ok := ann[AnnotationStoreBurst]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, refusal{fmt.Sprintf("%s: annotation %s %q: want a positive whole number", what, AnnotationStoreBurst, v)}
		}
		burst = n
	}
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	if l, ok := s.limiters[id]; ok && l.qps == qps && l.burst == burst {
		return l.limiter, nil
	}
	l := storeLimiter{qps: qps, burst: burst, limiter: rate.NewLimiter(rate.Limit(qps), burst)}
	s.limiters[id] = l
	return l.limiter, nil
}

// resolve turns a store's provider into a backend and its settings.
func (s *Syncer) resolve(ctx context.Context, what string, st *esv1.SecretStore) (*storeConfig, error) {
	p := st.Spec.Provider
	switch {
	case p == nil:
		return nil, refusal{what + " has no provider"}
	case p.Fake != nil:
		fake := map[string]string{}
		for _, d := range p.Fake.Data {
			fake[d.Key+"\x00"+d.Version] = d.Value
		}
		return &storeConfig{backend: "fake", fake: fake}, nil
	case p.Vault != nil:
		return s.vaultStore(ctx, what, st.Namespace, p.Vault)
	case p.AWS != nil:
		return s.awsStore(ctx, what, st.Namespace, p.AWS)
	case p.GCPSM != nil:
		return s.gcpStore(ctx, what, st.Namespace, p.GCPSM)
	}
	return nil, refusal{what + ": only the vault, aws, gcpsm and fake providers are supported"}
}

// validateStore checks a store the way its ExternalSecrets will use it — credentials read,
// settings valid, and a client opened (for Vault that is a login) — and records the result
// as the store's Ready condition, writing only when it changes.
func (s *Syncer) validateStore(ctx context.Context, gvr schema.GroupVersionResource, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	api := s.dyn.Resource(gvr).Namespace(ns)
	if ns == "" {
		api = s.dyn.Resource(gvr)
	}
	u, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var st esv1.SecretStore
	what := "SecretStore " + key
	if ns == "" {
		what = "ClusterSecretStore " + name
	}
	status, reason, msg := corev1.ConditionTrue, "Valid", "store validated"
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &st); err != nil {
		status, reason, msg = corev1.ConditionFalse, "InvalidStoreConfig", fmt.Sprintf("%s is malformed: %v", what, err)
	} else if st.Spec.Controller != s.opts.ControllerClass {
		return nil
	} else if cfg, err := s.resolve(ctx, what, &st); err != nil {
		status, reason, msg = corev1.ConditionFalse, "InvalidProviderConfig", err.Error()
	} else if cfg.backend != "fake" {
		clients := s.pool.Clients(map[string]providers.Settings{cfg.backend: cfg.settings})
		_, err := clients.Client(ctx, cfg.backend)
		clients.Close()
		if err != nil {
			status, reason, msg = corev1.ConditionFalse, "InvalidProviderConfig", err.Error()
		}
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Ready" && m["status"] == string(status) && m["reason"] == reason && m["message"] == msg {
			return nil
		}
	}
	if status == corev1.ConditionFalse {
		s.rec.Event(u, corev1.EventTypeWarning, reason, msg)
	}
	cond := map[string]any{"type": "Ready", "status": string(status), "reason": reason, "message": msg, "lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
	_ = unstructured.SetNestedSlice(u.Object, []any{cond}, "status", "conditions")
	_ = unstructured.SetNestedField(u.Object, "ReadOnly", "status", "capabilities")
	_, err = api.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

// admitted applies a ClusterSecretStore's conditions: with none, every namespace may use
// it; otherwise a namespace must match one condition — by name, by a regular expression
// matching the whole name (anchored, unlike ESO: "team-b" never admits "team-b-evil"), or
// by its labels — and a refusal names the store and the namespace.
func (s *Syncer) admitted(ctx context.Context, st *esv1.SecretStore, ns string) error {
	if len(st.Spec.Conditions) == 0 {
		return nil
	}
	var labels map[string]string
	for _, c := range st.Spec.Conditions {
		if slices.Contains(c.Namespaces, ns) {
			return nil
		}
		for _, expr := range c.NamespaceRegexes {
			if re, err := regexp.Compile(`^(?:` + expr + `)$`); err == nil && re.MatchString(ns) {
				return nil
			}
		}
		if c.NamespaceSelector != nil {
			if labels == nil {
				n, err := s.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if err != nil {
					return err
				}
				labels = n.Labels
				if labels == nil {
					labels = map[string]string{}
				}
			}
			sel, err := metav1.LabelSelectorAsSelector(c.NamespaceSelector)
			if err == nil && sel.Matches(k8slabels.Set(labels)) {
				return nil
			}
		}
	}
	return refusal{fmt.Sprintf("ClusterSecretStore %s does not admit namespace %q: no condition (namespaces, namespaceRegexes, namespaceSelector) matches it", st.Name, ns)}
}

// refNamespace is the namespace a store's reference (field) points into: the store's own for
// a SecretStore (storeNS), where naming another is refused; the one it names for a
// ClusterSecretStore (storeNS ""), which must name one. what are the objects referred to.
func refNamespace(store, storeNS string, named *string, field, what string) (string, error) {
	switch {
	case storeNS == "" && (named == nil || *named == ""):
		return "", refusal{fmt.Sprintf("%s: %s must name its namespace", store, field)}
	case storeNS == "":
		return *named, nil
	case named != nil && *named != storeNS:
		return "", refusal{fmt.Sprintf("%s: %s names namespace %q; a SecretStore uses %s of its own namespace only", store, field, *named, what)}
	}
	return storeNS, nil
}

// secretValue reads one key of a credentials Secret: in the store's namespace for a
// SecretStore (ns), in the namespace the selector names for a ClusterSecretStore (ns "").
func (s *Syncer) secretValue(ctx context.Context, what, ns string, sel esv1.SecretKeySelector, field string) (string, error) {
	from, err := refNamespace(what, ns, sel.Namespace, field, "credentials")
	if err != nil {
		return "", err
	}
	sec, err := s.kube.CoreV1().Secrets(from).Get(ctx, sel.Name, metav1.GetOptions{})
	if err != nil {
		return "", refusal{fmt.Sprintf("%s: %s: Secret %s/%s: %v", what, field, from, sel.Name, apiReason(err))}
	}
	val, ok := sec.Data[sel.Key]
	if !ok {
		return "", refusal{fmt.Sprintf("%s: %s: Secret %s/%s has no key %q", what, field, from, sel.Name, sel.Key)}
	}
	return string(val), nil
}

// awsStore maps an aws provider onto Secrets Manager or Parameter Store settings: static
// keys from a Secret, or the SDK's default chain (IRSA) when none are given; role and
// externalID assume a role on top.
func (s *Syncer) awsStore(ctx context.Context, what, ns string, a *esv1.AWSProvider) (*storeConfig, error) {
	backend := "awssm"
	switch a.Service {
	case "SecretsManager":
	case "ParameterStore":
		backend = "awsssm"
	default:
		return nil, refusal{fmt.Sprintf("%s: aws.service %q is not SecretsManager or ParameterStore", what, a.Service)}
	}
	set := providers.Settings{awssm.SettingRegion: a.Region}
	if a.Role != "" {
		set[awssm.SettingRoleARN] = a.Role
	}
	if a.ExternalID != "" {
		set[awssm.SettingExternalID] = a.ExternalID
	}
	if s.opts.AWSEndpoint != "" {
		set[awssm.SettingEndpoint] = s.opts.AWSEndpoint
	}
	if a.Auth.SecretRef == nil && a.Auth.JWTAuth == nil {
		if err := s.ambient(what, ns, "aws.auth"); err != nil {
			return nil, err
		}
	}
	if j := a.Auth.JWTAuth; j != nil {
		if a.Auth.SecretRef != nil {
			return nil, refusal{what + ": aws.auth: give secretRef or jwt, not both"}
		}
		if j.ServiceAccountRef == nil {
			return nil, refusal{what + ": aws.auth.jwt needs serviceAccountRef"}
		}
		role, tok, err := s.webIdentity(ctx, what, ns, *j.ServiceAccountRef)
		if err != nil {
			return nil, err
		}
		set[awssm.SettingWebIdentityRoleARN], set[awssm.SettingWebIdentityToken] = role, tok
	}
	if ref := a.Auth.SecretRef; ref != nil {
		id, err := s.secretValue(ctx, what, ns, ref.AccessKeyID, "auth.secretRef.accessKeyIDSecretRef")
		if err != nil {
			return nil, err
		}
		key, err := s.secretValue(ctx, what, ns, ref.SecretAccessKey, "auth.secretRef.secretAccessKeySecretRef")
		if err != nil {
			return nil, err
		}
		set[awssm.SettingAccessKeyID], set[awssm.SettingSecretAccessKey] = id, key
		if ref.SessionToken != nil {
			tok, err := s.secretValue(ctx, what, ns, *ref.SessionToken, "auth.secretRef.sessionTokenSecretRef")
			if err != nil {
				return nil, err
			}
			set[awssm.SettingSessionToken] = tok
		}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{backend: set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: backend, settings: set}, nil
}

// IRSA's annotations on a service account: the role its tokens may assume, and the audience
// those tokens are for.
const (
	annotationRoleARN  = "eks.amazonaws.com/role-arn"
	annotationAudience = "eks.amazonaws.com/audience"
)

// webIdentity is ESO's aws jwt auth: the service account's IRSA role (its
// eks.amazonaws.com/role-arn annotation) and a token requested for it, to be exchanged with
// STS AssumeRoleWithWebIdentity. The account is the store's namespace's (a ClusterSecretStore
// names one).
func (s *Syncer) webIdentity(ctx context.Context, what, ns string, sa esv1.ServiceAccountSelector) (role, token string, err error) {
	from, err := refNamespace(what, ns, sa.Namespace, "serviceAccountRef", "service accounts")
	if err != nil {
		return "", "", err
	}
	acct, err := s.kube.CoreV1().ServiceAccounts(from).Get(ctx, sa.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", refusal{fmt.Sprintf("%s: service account %s/%s: %s", what, from, sa.Name, apiReason(err))}
	}
	if role = acct.Annotations[annotationRoleARN]; role == "" {
		return "", "", refusal{fmt.Sprintf("%s: service account %s/%s has no %s annotation (the role its tokens assume)", what, from, sa.Name, annotationRoleARN)}
	}
	if len(sa.Audiences) == 0 {
		aud := "sts.amazonaws.com"
		if acct.Annotations[annotationAudience] != "" {
			aud = acct.Annotations[annotationAudience]
		}
		sa.Audiences = []string{aud}
	}
	token, err = s.serviceAccountToken(ctx, what, ns, sa)
	return role, token, err
}

// ambient refuses a namespaced SecretStore without credentials unless the operator lets
// those use the controller's own identity: it would read with the controller's rights.
func (s *Syncer) ambient(what, ns, field string) error {
	if ns == "" || s.opts.AmbientCredentials {
		return nil
	}
	return refusal{fmt.Sprintf("%s: %s names no credentials, and a SecretStore may not use the controller's own identity (a ClusterSecretStore may; the operator allows it for SecretStores with --allow-ambient-credentials)", what, field)}
}

// gcpStore maps a gcpsm provider onto Secret Manager settings: a service-account key from a
// Secret, or the controller's Application Default Credentials when none is given. The
// endpoint, its TLS roots and where keys are exchanged for tokens are the operator's.
func (s *Syncer) gcpStore(ctx context.Context, what, ns string, g *esv1.GCPSMProvider) (*storeConfig, error) {
	if g.ProjectID == "" {
		return nil, refusal{what + ": gcpsm.projectID is required"}
	}
	if strings.ContainsAny(g.ProjectID, "/ ") {
		return nil, refusal{what + ": gcpsm.projectID is a name, without '/'"}
	}
	if g.Location != "" {
		if _, err := gcpsm.ParseLocation(g.Location); err != nil {
			return nil, refusal{fmt.Sprintf("%s: gcpsm.%v", what, err)}
		}
	}
	set := providers.Settings{}
	for k, v := range map[string]string{gcpsm.SettingEndpoint: s.opts.GCPEndpoint, gcpsm.SettingCAFile: s.opts.GCPCAFile, gcpsm.SettingTokenURL: s.opts.GCPTokenURL} {
		if v != "" {
			set[k] = v
		}
	}
	switch a := g.Auth; {
	case a.SecretRef != nil:
		key, err := s.secretValue(ctx, what, ns, a.SecretRef.SecretAccessKey, "auth.secretRef.secretAccessKeySecretRef")
		if err != nil {
			return nil, err
		}
		set[gcpsm.SettingCredentialsJSON] = key
	case a.WorkloadIdentity != nil:
		return nil, refusal{what + ": gcpsm auth.workloadIdentity is not supported: use auth.secretRef, or a ClusterSecretStore without auth (the controller's own GKE identity)"}
	default:
		if err := s.ambient(what, ns, "gcpsm.auth"); err != nil {
			return nil, err
		}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{"gcpsm": set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: "gcpsm", settings: set, project: g.ProjectID, location: g.Location}, nil
}

// serverAllowed reports whether a namespaced SecretStore may name this Vault address: it
// must start with one of the operator's VaultServers, at a segment boundary.
func (s *Syncer) serverAllowed(server string) bool {
	for _, p := range s.opts.VaultServers {
		p = strings.TrimRight(p, "/")
		if server == p || strings.HasPrefix(server, p+"/") {
			return true
		}
	}
	return false
}

func (s *Syncer) vaultStore(ctx context.Context, what, ns string, v *esv1.VaultProvider) (*storeConfig, error) {
	if ns != "" && !s.serverAllowed(strings.TrimRight(v.Server, "/")) {
		return nil, refusal{fmt.Sprintf("%s: vault.server %q is not one the operator allows SecretStores to use (--allow-vault-server); a ClusterSecretStore may name any", what, v.Server)}
	}
	mount := "secret"
	if v.Path != nil && *v.Path != "" {
		mount = strings.Trim(*v.Path, "/")
	}
	kv := "2"
	if v.Version == "v1" {
		kv = "1"
	}
	set := providers.Settings{vault.SettingAddress: v.Server, vault.SettingKVVersions: mount + "=" + kv, vault.SettingRenew: "true"}
	if v.Namespace != nil {
		set[vault.SettingNamespace] = *v.Namespace
	}
	secretValue := func(sel esv1.SecretKeySelector, field string) (string, error) {
		return s.secretValue(ctx, what, ns, sel, field)
	}

	a := v.Auth
	switch {
	case a == nil:
		return nil, refusal{what + ": vault.auth is required"}
	case a.TokenSecretRef != nil:
		tok, err := secretValue(*a.TokenSecretRef, "auth.tokenSecretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingAuthMethod], set[vault.SettingToken] = "token", tok
	case a.AppRole != nil:
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount] = "approle", a.AppRole.Path
		set[vault.SettingRoleID] = a.AppRole.RoleID
		if a.AppRole.RoleRef != nil {
			id, err := secretValue(*a.AppRole.RoleRef, "auth.appRole.roleRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingRoleID] = id
		}
		sid, err := secretValue(a.AppRole.SecretRef, "auth.appRole.secretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingSecretID] = sid
	case a.Kubernetes != nil:
		k := a.Kubernetes
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount], set[vault.SettingRole] = "kubernetes", k.Path, k.Role
		switch {
		case k.SecretRef != nil:
			jwt, err := secretValue(*k.SecretRef, "auth.kubernetes.secretRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		case k.ServiceAccountRef != nil:
			jwt, err := s.serviceAccountToken(ctx, what, ns, *k.ServiceAccountRef)
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		default:
			return nil, refusal{what + ": auth.kubernetes needs serviceAccountRef or secretRef"}
		}
	case a.Jwt != nil:
		j := a.Jwt
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount], set[vault.SettingRole] = "jwt", j.Path, j.Role
		switch {
		case j.SecretRef != nil:
			jwt, err := secretValue(*j.SecretRef, "auth.jwt.secretRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		case j.KubernetesServiceAccountToken != nil:
			sa := j.KubernetesServiceAccountToken.ServiceAccountRef
			if aud := j.KubernetesServiceAccountToken.Audiences; aud != nil {
				sa.Audiences = append(sa.Audiences, *aud...)
			}
			jwt, err := s.serviceAccountToken(ctx, what, ns, sa)
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		default:
			return nil, refusal{what + ": auth.jwt needs secretRef or kubernetesServiceAccountToken"}
		}
	case a.UserPass != nil:
		u := a.UserPass
		if u.Username == "" {
			return nil, refusal{what + ": auth.userPass.username is required"}
		}
		pass, err := secretValue(u.SecretRef, "auth.userPass.secretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount] = "userpass", u.Path
		set[vault.SettingUsername], set[vault.SettingPassword] = u.Username, pass
	default:
		return nil, refusal{what + ": vault.auth needs tokenSecretRef, appRole, kubernetes, jwt or userPass"}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{"vault": set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: "vault", settings: set, mount: mount}, nil
}

// invalidFields lists what a validation error says is wrong, by field and kind of error,
// leaving out the values it may quote.
func invalidFields(err error) string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Details == nil {
		return "invalid"
	}
	var parts []string
	for _, c := range se.Status().Details.Causes {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Field, c.Type))
	}
	if len(parts) == 0 {
		return "invalid"
	}
	return strings.Join(parts, "; ")
}

// serviceAccountToken returns a token for a service account, requested with the
// TokenRequest API and reused until it is two thirds through its life, so the settings it
// goes into — and so the backend login they key — stay the same meanwhile. A SecretStore's
// account is in its own namespace; a ClusterSecretStore names the namespace.
func (s *Syncer) serviceAccountToken(ctx context.Context, what, ns string, sa esv1.ServiceAccountSelector) (string, error) {
	ns, err := refNamespace(what, ns, sa.Namespace, "serviceAccountRef", "service accounts")
	if err != nil {
		return "", err
	}
	key := ns + "/" + sa.Name + "\x00" + strings.Join(sa.Audiences, ",")
	s.tokensMu.Lock()
	defer s.tokensMu.Unlock()
	if t, ok := s.tokens[key]; ok && time.Now().Before(t.renewAt) {
		return t.token, nil
	}
	exp := int64(3600)
	tr, err := s.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: sa.Audiences, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", refusal{fmt.Sprintf("%s: a token for service account %s/%s: %s", what, ns, sa.Name, apiReason(err))}
	}
	life := time.Until(tr.Status.ExpirationTimestamp.Time)
	s.tokens[key] = saToken{token: tr.Status.Token, renewAt: time.Now().Add(life * 2 / 3)}
	return tr.Status.Token, nil
}

type saToken struct {
	token   string
	renewAt time.Time
}

// apiReason is an API error without the object it quotes.
func apiReason(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	if apierrors.IsForbidden(err) {
		return "forbidden"
	}
	return "unreadable"
}

// fetch reads one secret through the store's principal, sharing the read with every
// ExternalSecret that asks for the same secret: a read made at or after notBefore (the
// start of the asker's refresh window, or the moment a force-sync was seen) or one in
// flight serves everyone (single flight).
func (s *Syncer) fetch(ctx context.Context, st *storeConfig, ref providers.Ref, notBefore time.Time) (providers.Secret, error) {
	if st.backend == "fake" {
		v, ok := st.fake[ref.Path+"\x00"+ref.Version]
		if !ok {
			return providers.Secret{}, fmt.Errorf("%w: key %q", providers.ErrNotFound, ref.Path)
		}
		var m map[string]any
		if json.Unmarshal([]byte(v), &m) != nil {
			m = map[string]any{"value": v}
		}
		return providers.Secret{Data: m, Whole: v}, nil
	}
	key := s.pool.Principal(st.backend, st.settings) + "\x00" + ref.String()
	s.cacheMu.Lock()
	e, ok := s.fetched[key]
	if ok {
		select {
		case <-e.done:
			if e.err != nil || e.at.Before(notBefore) {
				ok = false // stale or failed: read again
			}
		default: // a read in flight: share it
		}
	}
	if !ok {
		e = &fetchEntry{done: make(chan struct{})}
		s.fetched[key] = e
	}
	e.note(time.Now(), notBefore)
	if !ok {
		s.cacheMu.Unlock()
		if e.err = st.wait(ctx); e.err == nil {
			clients := s.pool.Clients(map[string]providers.Settings{st.backend: st.settings})
			e.secret, e.err = clients.Fetch(ctx, ref)
			clients.Close()
		}
		e.at = time.Now()
		outcome := "ok"
		if e.err != nil {
			outcome = "error"
		}
		s.reads.WithLabelValues(st.backend, "get", outcome).Inc()
		close(e.done)
		return e.secret, e.err
	}
	s.cacheMu.Unlock()
	s.hits.Inc()
	select {
	case <-e.done:
	case <-ctx.Done():
		return providers.Secret{}, ctx.Err()
	}
	return e.secret, e.err
}

// values reads everything the ExternalSecret asks for: data[] by key, dataFrom[].extract as
// whole secrets, renamed by rewrite.
//
// With deletionPolicy Delete or Merge, a remote secret that no longer exists is not an
// error: its keys are left out, and gone reports how many sources were missing.
func (s *Syncer) values(ctx context.Context, st *storeConfig, es *esv1.ExternalSecret, notBefore time.Time) (out map[string][]byte, gone int, err error) {
	out = map[string][]byte{}
	tolerate := es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyDelete || es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyMerge
	ref := func(r esv1.ExternalSecretDataRemoteRef) providers.Ref {
		path := r.Key
		if st.backend == "vault" && !strings.HasPrefix(path, st.mount+"/") {
			path = st.mount + "/" + strings.TrimPrefix(path, "/")
		}
		if st.backend == "gcpsm" && !strings.HasPrefix(path, "projects/") {
			loc := ""
			if st.location != "" {
				loc = "/locations/" + st.location
			}
			path = "projects/" + st.project + loc + "/secrets/" + path
		}
		return providers.Ref{Backend: st.backend, Path: path, Version: r.Version}
	}
	for i, d := range es.Spec.Data {
		sec, err := s.fetch(ctx, st, ref(d.RemoteRef), notBefore)
		if tolerate && errors.Is(err, providers.ErrNotFound) {
			gone++
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		v, err := property(sec, d.RemoteRef.Property)
		if err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		if v, err = decode(v, d.RemoteRef.DecodingStrategy); err != nil {
			return nil, 0, fmt.Errorf("data[%d] (%s): %w", i, d.SecretKey, err)
		}
		out[d.SecretKey] = v
	}
	for i, df := range es.Spec.DataFrom {
		var found map[string][]byte
		switch {
		case df.Find != nil:
			found, err = s.find(ctx, st, df.Find, notBefore)
			if err != nil {
				return nil, 0, fmt.Errorf("dataFrom[%d].find: %w", i, err)
			}
		case df.Extract != nil:
			sec, err := s.fetch(ctx, st, ref(*df.Extract), notBefore)
			if tolerate && errors.Is(err, providers.ErrNotFound) {
				gone++
				continue
			}
			if err != nil {
				return nil, 0, fmt.Errorf("dataFrom[%d]: %w", i, err)
			}
			found = map[string][]byte{}
			for k, raw := range sec.Data {
				v, err := decode(stringify(raw), df.Extract.DecodingStrategy)
				if err != nil {
					return nil, 0, fmt.Errorf("dataFrom[%d] key %q: %w", i, k, err)
				}
				found[convertKey(k, df.Extract.ConversionStrategy)] = v
			}
		default:
			return nil, 0, refusal{fmt.Sprintf("dataFrom[%d]: needs extract or find", i)}
		}
		for k, v := range found {
			for _, rw := range df.Rewrite {
				if rw.Regexp == nil {
					continue
				}
				re, err := regexp.Compile(rw.Regexp.Source)
				if err != nil {
					return nil, 0, refusal{fmt.Sprintf("dataFrom[%d].rewrite: %v", i, err)}
				}
				k = re.ReplaceAllString(k, rw.Regexp.Target)
			}
			out[k] = v
		}
	}
	return out, gone, nil
}

// maxFound bounds the secrets one dataFrom.find may select.
const maxFound = 500

// find is ESO's dataFrom.find: every secret under find.path (for Vault, relative to the
// store's mount; for Secrets Manager, a name prefix) whose name matches find.name.regexp and
// which carries every find.tags pair (Secrets Manager), each as one key — its name with '/'
// turned into '_' (ESO's Default conversion). A Vault secret's value is its data as JSON, a
// Secrets Manager secret's its string. Each secret is read through the shared read cache,
// like data[].
func (s *Syncer) find(ctx context.Context, st *storeConfig, f *esv1.ExternalSecretFind, notBefore time.Time) (map[string][]byte, error) {
	var root, strip string
	switch st.backend {
	case "vault":
		if len(f.Tags) > 0 {
			return nil, refusal{"find.tags: Vault secrets are found by path and name only"}
		}
		root, strip = st.mount, st.mount+"/"
		if f.Path != nil && strings.Trim(*f.Path, "/") != "" {
			root = st.mount + "/" + strings.Trim(*f.Path, "/")
		}
	case "awssm":
		if f.Path != nil {
			root = *f.Path
		}
	default:
		return nil, refusal{"find is supported for the vault provider and aws SecretsManager"}
	}
	var re *regexp.Regexp
	if f.Name != nil && f.Name.RegExp != "" {
		var err error
		if re, err = regexp.Compile(f.Name.RegExp); err != nil {
			return nil, refusal{fmt.Sprintf("find.name.regexp: %v", err)}
		}
	}
	if err := st.wait(ctx); err != nil {
		return nil, err
	}
	clients := s.pool.Clients(map[string]providers.Settings{st.backend: st.settings})
	names, err := clients.Find(ctx, st.backend, root, f.Tags, maxFound)
	clients.Close()
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.reads.WithLabelValues(st.backend, "list", outcome).Inc()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, p := range names {
		rel := strings.TrimPrefix(p, strip)
		if re != nil && !re.MatchString(rel) {
			continue
		}
		sec, err := s.fetch(ctx, st, providers.Ref{Backend: st.backend, Path: p}, notBefore)
		if err != nil {
			return nil, err
		}
		var raw []byte
		if st.backend == "vault" {
			raw, err = json.Marshal(sec.Data) // a path's key/value pairs, as ESO gives them
		} else {
			raw, err = property(sec, "") // the secret's string
		}
		if err != nil {
			return nil, fmt.Errorf("secret %q: %v", rel, err)
		}
		v, err := decode(raw, f.DecodingStrategy)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", rel, err)
		}
		out[convertKey(strings.ReplaceAll(rel, "/", "_"), f.ConversionStrategy)] = v
	}
	return out, nil
}

// property selects a value of a secret: the whole secret (as JSON when structured) without
// one, a key, or a dotted path into nested JSON.
func property(sec providers.Secret, prop string) ([]byte, error) {
	if prop == "" {
		if sec.Whole != nil {
			return stringify(sec.Whole), nil
		}
		return json.Marshal(sec.Data)
	}
	var cur any = sec.Data
	for part := range strings.SplitSeq(prop, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("property %q: not an object at %q", prop, part)
		}
		if cur, ok = m[part]; !ok {
			if whole, ok2 := m[prop]; ok2 { // a key that has dots in it
				return stringify(whole), nil
			}
			return nil, fmt.Errorf("%w: property %q", providers.ErrNotFound, prop)
		}
	}
	return stringify(cur), nil
}

func stringify(v any) []byte {
	switch t := v.(type) {
	case string:
		return []byte(t)
	case []byte:
		return t
	}
	b, _ := json.Marshal(v)
	return b
}

func decode(v []byte, strategy esv1.ExternalSecretDecodingStrategy) ([]byte, error) {
	switch strategy {
	case "", "None":
		return v, nil
	case "Base64":
		return base64.StdEncoding.DecodeString(string(v))
	case "Base64URL":
		return base64.URLEncoding.DecodeString(string(v))
	case "Auto":
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if d, err := enc.DecodeString(string(v)); err == nil {
				return d, nil
			}
		}
		return v, nil
	}
	return nil, refusal{fmt.Sprintf("decodingStrategy %q is not Auto, Base64, Base64URL or None", strategy)}
}

// templateSource reads the data of a ConfigMap or Secret of the ExternalSecret's
// namespace, for templateFrom.
type templateSource func(kind, name string) (map[string]string, error)

// render builds the target's data, type and metadata from the values and the template:
// template.data entries, then templateFrom (ConfigMap or Secret items, or a literal),
// each a Go template over the values. All of them run on one template budget
// (internal/tmplfuncs) that ctx also ends.
func render(ctx context.Context, es *esv1.ExternalSecret, values map[string][]byte, source templateSource) (map[string][]byte, corev1.SecretType, esv1.ExternalSecretTemplateMetadata, error) {
	t := es.Spec.Target.Template
	if t == nil {
		return values, corev1.SecretTypeOpaque, esv1.ExternalSecretTemplateMetadata{}, nil
	}
	typ := t.Type
	if typ == "" {
		typ = corev1.SecretTypeOpaque
	}
	meta := esv1.ExternalSecretTemplateMetadata{Labels: maps.Clone(t.Metadata.Labels), Annotations: maps.Clone(t.Metadata.Annotations)}
	vals := map[string]string{}
	for k, v := range values {
		vals[k] = string(v)
	}
	out := map[string][]byte{}
	if t.MergePolicy == "Merge" || len(t.Data) == 0 && len(t.TemplateFrom) == 0 {
		// Merge keeps the values beside the template's keys; a template with neither data
		// nor templateFrom (type or metadata only) keeps the values as they are, as in ESO.
		maps.Copy(out, values)
	}
	budget := tmplfuncs.NewBudget(ctx, tmplfuncs.DefaultLimits())
	// exec runs one template; secretText says it came from a Secret, whose text a parse
	// error would quote.
	exec := func(where, text string, secretText bool) (string, error) {
		tpl, err := budget.Parse(where, text, "error")
		if errors.Is(err, tmplfuncs.ErrBudget) {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		if err != nil && secretText {
			return "", refusal{fmt.Sprintf("%s does not parse as a template", where)}
		}
		if err != nil {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		out, err := tpl.Execute(vals)
		if errors.Is(err, tmplfuncs.ErrBudget) {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		if err != nil {
			// The cause may quote a value: name the place only.
			return "", refusal{fmt.Sprintf("%s cannot be rendered (check the keys it uses)", where)}
		}
		return out, nil
	}
	for _, k := range slices.Sorted(maps.Keys(t.Data)) {
		v, err := exec(fmt.Sprintf("target.template.data %q", k), t.Data[k], false)
		if err != nil {
			return nil, "", meta, err
		}
		out[k] = []byte(v)
	}
	put := func(target esv1.TemplateTarget, k, v string) {
		switch target {
		case "Annotations":
			if meta.Annotations == nil {
				meta.Annotations = map[string]string{}
			}
			meta.Annotations[k] = v
		case "Labels":
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			meta.Labels[k] = v
		default:
			out[k] = []byte(v)
		}
	}
	for i, tf := range t.TemplateFrom {
		where := fmt.Sprintf("target.template.templateFrom[%d]", i)
		if tf.Literal != nil {
			rendered, err := exec(where+".literal", *tf.Literal, false)
			if err != nil {
				return nil, "", meta, err
			}
			var m map[string]string
			if err := yaml.Unmarshal([]byte(rendered), &m); err != nil {
				return nil, "", meta, refusal{where + ".literal does not render to a mapping of strings"}
			}
			for k, v := range m {
				put(tf.Target, k, v)
			}
			continue
		}
		kind, ref := "ConfigMap", tf.ConfigMap
		if tf.Secret != nil {
			kind, ref = "Secret", tf.Secret
		}
		if ref == nil {
			return nil, "", meta, refusal{where + " needs configMap, secret or literal"}
		}
		src, err := source(kind, ref.Name)
		if err != nil {
			return nil, "", meta, refusal{fmt.Sprintf("%s: %s %q: %v", where, kind, ref.Name, err)}
		}
		for _, item := range ref.Items {
			text, ok := src[item.Key]
			if !ok {
				return nil, "", meta, refusal{fmt.Sprintf("%s: %s %q has no key %q", where, kind, ref.Name, item.Key)}
			}
			rendered, err := exec(fmt.Sprintf("%s (%s %s, key %s)", where, kind, ref.Name, item.Key), text, kind == "Secret")
			if err != nil {
				return nil, "", meta, err
			}
			if item.TemplateAs == "KeysAndValues" {
				var m map[string]string
				if err := yaml.Unmarshal([]byte(rendered), &m); err != nil {
					return nil, "", meta, refusal{fmt.Sprintf("%s: key %s does not render to a mapping of strings", where, item.Key)}
				}
				for k, v := range m {
					put(tf.Target, k, v)
				}
				continue
			}
			put(tf.Target, item.Key, rendered)
		}
	}
	return out, typ, meta, nil
}

// writeTarget creates or updates the target Secret as the creation policy says, writing
// only when something differs.
func (s *Syncer) writeTarget(ctx context.Context, u *unstructured.Unstructured, es *esv1.ExternalSecret, values map[string][]byte) error {
	data, typ, meta, err := render(ctx, es, values, func(kind, name string) (map[string]string, error) {
		if kind == "ConfigMap" {
			cm, err := s.kube.CoreV1().ConfigMaps(es.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, errors.New(apiReason(err))
			}
			return cm.Data, nil
		}
		sec, err := s.kube.CoreV1().Secrets(es.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, errors.New(apiReason(err))
		}
		out := map[string]string{}
		for k, v := range sec.Data {
			out[k] = string(v)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	name := targetName(es)
	policy := es.Spec.Target.CreationPolicy
	if policy == "" {
		policy = esv1.CreatePolicyOwner
	}
	if policy == esv1.CreatePolicyNone {
		return nil
	}
	api := s.kube.CoreV1().Secrets(es.Namespace)
	existing, err := s.secrets.Secrets(es.Namespace).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !ownedByExternalSecret(existing) && existing.Annotations[AnnotationAdopt] != "true") {
		// The cache may lag a create, and keeps only the metadata of Secrets that are not
		// targets: read the real thing before merging into it or refusing it.
		existing, err = api.Get(ctx, name, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		if policy == esv1.CreatePolicyMerge {
			return refusal{fmt.Sprintf("target Secret %s/%s does not exist (creationPolicy Merge)", es.Namespace, name)}
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: es.Namespace, Labels: meta.Labels, Annotations: meta.Annotations}, Type: typ, Data: data}
		if es.Spec.Target.Immutable {
			yes := true
			sec.Immutable = &yes
		}
		if policy == esv1.CreatePolicyOwner {
			sec.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(u, esv1.GroupVersion.WithKind("ExternalSecret"))}
		}
		if policy == esv1.CreatePolicyOrphan {
			if sec.Annotations == nil {
				sec.Annotations = map[string]string{}
			}
			sec.Annotations[AnnotationCreatedBy] = string(u.GetUID())
		}
		_, err := api.Create(ctx, sec, metav1.CreateOptions{FieldManager: "keyway-syncer"})
		return err
	case err != nil:
		return err
	}
	if owner := metav1.GetControllerOf(existing); owner != nil && owner.UID != u.GetUID() && policy != esv1.CreatePolicyOwner {
		return refusal{fmt.Sprintf("Secret %s/%s is controlled by %s %s; creationPolicy %s never writes a Secret another controller owns", es.Namespace, name, owner.Kind, owner.Name, policy)}
	}
	upd := existing.DeepCopy()
	switch policy {
	case esv1.CreatePolicyOwner:
		if !metav1.IsControlledBy(existing, u) && existing.Annotations[AnnotationAdopt] != "true" {
			return refusal{fmt.Sprintf("Secret %s/%s exists and is not owned by this ExternalSecret; annotate it %s: \"true\" to let keyway take it over", es.Namespace, name, AnnotationAdopt)}
		}
		upd.Data, upd.Type, upd.Labels = data, typ, meta.Labels
		upd.Annotations = maps.Clone(meta.Annotations)
		if v, ok := existing.Annotations[AnnotationAdopt]; ok {
			if upd.Annotations == nil {
				upd.Annotations = map[string]string{}
			}
			upd.Annotations[AnnotationAdopt] = v
		}
		upd.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(u, esv1.GroupVersion.WithKind("ExternalSecret"))}
	case esv1.CreatePolicyOrphan:
		if existing.Annotations[AnnotationCreatedBy] != string(u.GetUID()) && existing.Annotations[AnnotationAdopt] != "true" {
			return refusal{fmt.Sprintf("Secret %s/%s exists and was not created by this ExternalSecret (creationPolicy Orphan does not take Secrets over); annotate it %s: \"true\" to let keyway write it", es.Namespace, name, AnnotationAdopt)}
		}
		upd.Data, upd.Type = data, typ
	case esv1.CreatePolicyMerge:
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		maps.Copy(upd.Data, data)
	}
	if ctl.SameSecret(existing, upd) {
		return nil
	}
	_, err = api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: "keyway-syncer"})
	return err
}

// deleteTarget applies deletionPolicy Delete once every remote secret is gone: the target
// Secret is deleted (only if this ExternalSecret owns it) and Ready says so.
func (s *Syncer) deleteTarget(ctx context.Context, u *unstructured.Unstructured, es *esv1.ExternalSecret) error {
	name := targetName(es)
	sec, err := s.kube.CoreV1().Secrets(es.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case metav1.IsControlledBy(sec, u):
		if err := s.kube.CoreV1().Secrets(es.Namespace).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		s.rec.Eventf(u, corev1.EventTypeNormal, esv1.ReasonSecretDeleted, "every remote secret is gone: Secret %s deleted (deletionPolicy Delete)", name)
	}
	msg := "every remote secret is gone; the target Secret was deleted (deletionPolicy Delete)"
	if readyIs(u, corev1.ConditionFalse, esv1.ReasonSecretDeleted, msg) {
		return nil
	}
	return s.setReady(ctx, u, corev1.ConditionFalse, esv1.ReasonSecretDeleted, msg)
}

// fail records a failure: a Warning event and Ready=False when that is news. Messages name
// objects, keys and reasons, never values.
func (s *Syncer) fail(ctx context.Context, u *unstructured.Unstructured, err error) error {
	msg := err.Error()
	s.syncs.WithLabelValues("error").Inc()
	s.errs.WithLabelValues(errorReason(err)).Inc()
	if readyIs(u, corev1.ConditionFalse, esv1.ReasonSecretSyncedError, msg) {
		return nil
	}
	s.rec.Event(u, corev1.EventTypeWarning, esv1.ReasonSecretSyncedError, msg)
	s.log.Warn("sync failed", "externalsecret", u.GetNamespace()+"/"+u.GetName(), "message", msg)
	return s.setReady(ctx, u, corev1.ConditionFalse, esv1.ReasonSecretSyncedError, msg)
}

// errorReason is a failed sync's metric label: what kind of problem, never its text.
func errorReason(err error) string {
	var r refusal
	switch {
	case errors.As(err, &r):
		return "config"
	case errors.Is(err, providers.ErrNotFound):
		return "not-found"
	case errors.Is(err, providers.ErrPermissionDenied):
		return "permission-denied"
	case errors.Is(err, providers.ErrUnavailable), errors.Is(err, errBackendDown):
		return "backend-unavailable"
	}
	return "other"
}

func readyIs(u *unstructured.Unstructured, status corev1.ConditionStatus, reason, msg string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == string(esv1.ExternalSecretReady) {
			return m["status"] == string(status) && m["reason"] == reason && m["message"] == msg
		}
	}
	return false
}

// setReady writes the Ready condition, refreshTime, syncedResourceVersion and binding.
func (s *Syncer) setReady(ctx context.Context, u *unstructured.Unstructured, status corev1.ConditionStatus, reason, msg string) error {
	cur := u.DeepCopy()
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := map[string]any{"type": string(esv1.ExternalSecretReady), "status": string(status), "reason": reason, "message": msg, "lastTransitionTime": now}
	if readyIs(u, status, reason, msg) {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == string(esv1.ExternalSecretReady) {
				cond["lastTransitionTime"] = m["lastTransitionTime"]
			}
		}
	}
	_ = unstructured.SetNestedSlice(cur.Object, []any{cond}, "status", "conditions")
	_ = unstructured.SetNestedField(cur.Object, now, "status", "refreshTime")
	_ = unstructured.SetNestedField(cur.Object, fmt.Sprintf("%d", u.GetGeneration()), "status", "syncedResourceVersion")
	if status == corev1.ConditionTrue {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "target", "name")
		if name == "" {
			name = u.GetName()
		}
		_ = unstructured.SetNestedField(cur.Object, map[string]any{"name": name}, "status", "binding")
	}
	_, err := s.dyn.Resource(ExternalSecretGVR).Namespace(cur.GetNamespace()).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err // a conflict is retried with the informer's newer copy
}

// readyCollector reports ExternalSecrets by their Ready condition's status, counted from the
// informer's cache at each scrape.
type readyCollector struct{ s *Syncer }

var readyDesc = prometheus.NewDesc("keyway_syncer_externalsecrets", "ExternalSecrets by Ready status (True, False, Unknown: not synced yet).", []string{"ready"}, nil)

func (c readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (c readyCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{"True": 0, "False": 0, "Unknown": 0}
	var items []any
	if c.s.esInf != nil {
		items = c.s.esInf.GetStore().List()
	}
	for _, item := range items {
		status := "Unknown"
		conds, _, _ := unstructured.NestedSlice(item.(*unstructured.Unstructured).Object, "status", "conditions")
		for _, cond := range conds {
			if m, ok := cond.(map[string]any); ok && m["type"] == "Ready" {
				if v, _ := m["status"].(string); v == "True" || v == "False" {
					status = v
				}
			}
		}
		counts[status]++
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, n, status)
	}
}
