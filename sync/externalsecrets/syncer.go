package externalsecrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
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
	// ClusterExternalSecrets, when the cluster serves them (ces.go).
	cesInf     cache.SharedIndexInformer
	nsFactory  informers.SharedInformerFactory
	namespaces corelisters.NamespaceLister
	cesSynced  []cache.InformerSynced
	secInf     cache.SharedIndexInformer
	secrets    corelisters.SecretLister

	iso     *isolation // stores kept apart: worker shares and backend back-off
	cacheMu sync.Mutex
	fetched map[string]*fetchEntry // principal + ref → the last read

	limitMu  sync.Mutex
	limiters map[string]storeLimiter // store kind/namespace/name → its read limiter

	timersMu sync.Mutex
	timers   map[string]*time.Timer // next refresh per ExternalSecret
	forced   map[string]string      // the force-sync annotation value last acted on
	overdue  map[string]time.Time   // ExternalSecrets warned as overdue, by the refresh they missed

	tokensMu sync.Mutex
	tokens   map[string]saToken // requested service-account tokens, by account and audiences

	reads    *prometheus.CounterVec
	syncs    *prometheus.CounterVec
	errs     *prometheus.CounterVec
	hits     prometheus.Counter
	duration prometheus.Histogram
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
	s := &Syncer{opts: o, kube: kube, dyn: dyn, log: o.Logger, queue: ctl.NewQueue(), iso: newIsolation(o.Workers), fetched: map[string]*fetchEntry{}, timers: map[string]*time.Timer{}, storeInfs: map[schema.GroupVersionResource]cache.SharedIndexInformer{}, forced: map[string]string{}, overdue: map[string]time.Time{}, tokens: map[string]saToken{}, limiters: map[string]storeLimiter{},
		pool: providers.NewPool(o.Backends, o.Logger, time.Hour)}
	s.reads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_backend_reads_total", Help: "Backend reads by provider and outcome (a cache hit is not a read)."}, []string{"provider", "operation", "outcome"})
	s.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_syncs_total", Help: "ExternalSecret syncs by result."}, []string{"result"})
	s.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_syncer_sync_errors_total", Help: "Failed ExternalSecret syncs by kind of problem (config, not-found, permission-denied, backend-unavailable, other)."}, []string{"reason"})
	s.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "keyway_syncer_cache_hits_total", Help: "Values served from a read shared with other ExternalSecrets instead of the backend."})
	s.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keyway_syncer_reconcile_duration_seconds", Help: "Time to sync one ExternalSecret.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	o.Registry.MustRegister(s.reads, s.syncs, s.errs, s.hits, s.duration, readyCollector{s},
		ctl.PanicCounter("keyway_syncer_panics_total", "Reconciles that panicked (recovered; the ExternalSecret is retried with back-off).", func() *ctl.Queue { return s.queue }))
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
			s.enqueueUsers(kind, m.GetNamespace(), m.GetName())
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
	// Credentials that appear after their store (GitOps applies in any order) or change:
	// the invalid stores that could read them are validated again at once.
	_, _ = s.secInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.credentialsChanged(obj) },
		UpdateFunc: func(_, n any) { s.credentialsChanged(n) },
	})
	if cesServed(kube) {
		s.watchCES(kube)
	} else {
		s.log.Info("the cluster serves no ClusterExternalSecrets (install keyway's CRDs to use them)")
	}
	return s, nil
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
	if s.nsFactory != nil {
		s.nsFactory.Start(ctx.Done())
		defer s.nsFactory.Shutdown()
	}
	synced := append([]cache.InformerSynced{s.esInf.HasSynced, s.secInf.HasSynced}, s.cesSynced...)
	for _, inf := range s.storeInfs {
		synced = append(synced, inf.HasSynced)
	}
	for _, synced := range synced {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			return errors.New("informer caches did not sync")
		}
	}
	go func() {
		tick := time.NewTicker(pruneEvery)
		defer tick.Stop()
		late := time.NewTicker(overdueCheckEvery)
		defer late.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				s.prune(now)
			case now := <-late.C:
				s.checkOverdue(now)
			}
		}
	}()
	// Run returns once the syncs in flight are done.
	ctl.RunWorkers(ctx, s.opts.Workers, s.queue, s.log, s.handle)
	return nil
}

// handle syncs one ExternalSecret or validates one store, and settles its key in the queue.
func (s *Syncer) handle(ctx context.Context, key string) {
	var next time.Duration
	var err error
	ces, isCES := cesKey(key)
	switch {
	case isCES:
		next, err = s.reconcileCES(ctx, ces)
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
	case errors.Is(err, errStoreBusy):
		// Not a failure: its store's share of the workers is taken. Shortly again, without
		// the back-off that grows for failures.
		time.AfterFunc(storeBusyDelay, func() { s.queue.Add(key, ctl.Low) })
	case errors.Is(err, errRevalidate):
		s.queue.Retry(key) // said in the store's status already
	case apierrors.IsConflict(err), errors.Is(err, errBackendDown):
		s.queue.Retry(key) // reported in status already
	case err != nil:
		s.log.Warn("sync failed; retrying", "externalsecret", key, "error", err)
		s.queue.Retry(key)
	default:
		s.queue.Forget(key)
		s.schedule(key, next)
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
	if err := esv1.ExternalSecretFields.Check(u.Object); err != nil {
		return 0, s.fail(ctx, u, refusal{err.Error()})
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
	release, ok := s.iso.claim(store.isolationKey(s.pool))
	if !ok {
		return 0, errStoreBusy // before a force-sync is taken in: it is still due next time
	}
	defer release()
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
	fellBack, vctx := false, ctx
	if !due && readyIs(u, corev1.ConditionTrue, esv1.ReasonSecretSynced, "secret synced") {
		vctx = context.WithValue(ctx, fallbackKey{}, &fellBack)
	}
	data, gone, err := s.values(vctx, store, &es, notBefore)
	if fellBack {
		s.log.Debug("repaired from the last good read: the backend's latest read failed", "externalsecret", key)
	}
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
			err = refusal{"the API server refused the target Secret: " + redact.InvalidFields(err)}
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
	if es.Spec.Target.DeletionPolicy == esv1.DeletionPolicyDelete && es.Spec.Target.CreationPolicy != "" && es.Spec.Target.CreationPolicy != esv1.CreatePolicyOwner {
		// ESO's webhook refuses it too: a Secret the ExternalSecret does not own is not its
		// to delete.
		return refusal{fmt.Sprintf("target.deletionPolicy Delete needs creationPolicy Owner (not %s): a Secret the ExternalSecret does not own is not deleted", es.Spec.Target.CreationPolicy)}
	}
	return nil
}

// refusal is a sync failure that is the ExternalSecret's to fix, reported in its status.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }
