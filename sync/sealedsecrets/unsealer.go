package sealedsecrets

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sealing"
)

// SealedSecretGVR is the resource the unsealer watches.
var SealedSecretGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}

// Annotations honoured on an existing Secret.
const (
	AnnotationManaged = "sealedsecrets.bitnami.com/managed" // "true": the unsealer may take it over
	AnnotationPatch   = "sealedsecrets.bitnami.com/patch"   // "true": merge sealed keys into it
)

// Options configure an Unsealer.
type Options struct {
	// Namespace holds the key ring (kubernetes.io/tls Secrets labelled
	// sealedsecrets.bitnami.com/sealed-secrets-key).
	Namespace string
	// KeyRenewPeriod is how old the newest key may get before a new one is generated;
	// 0 disables renewal. Default 30 days.
	KeyRenewPeriod time.Duration
	// KeyBits is the size of generated keys (default 4096).
	KeyBits int
	// ResyncPeriod is how often every SealedSecret is checked again (default 10 minutes);
	// a check of a settled object reads caches only.
	ResyncPeriod time.Duration
	Workers      int
	Logger       *slog.Logger
	// Registry receives the metrics; nil makes a private one.
	Registry *prometheus.Registry
}

// Unsealer is the SealedSecret controller.
type Unsealer struct {
	opts    Options
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	log     *slog.Logger
	rec     record.EventRecorder
	bcast   record.EventBroadcaster
	queue   *ctl.Queue
	ssInf   cache.SharedIndexInformer
	secInf  cache.SharedIndexInformer
	secrets cache.Indexer // secretEntry by namespace/name

	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	decrypts prometheus.Counter

	mu       sync.Mutex
	keyCache map[string]*cachedKey // by key Secret name
}

type cachedKey struct {
	rv  string
	key *sealing.Key
}

// New builds an Unsealer.
func New(kube kubernetes.Interface, dyn dynamic.Interface, o Options) *Unsealer {
	if o.KeyRenewPeriod == 0 {
		o.KeyRenewPeriod = 30 * 24 * time.Hour
	}
	if o.KeyBits == 0 {
		o.KeyBits = sealing.KeyBits
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.ResyncPeriod == 0 {
		o.ResyncPeriod = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	u := &Unsealer{opts: o, kube: kube, dyn: dyn, log: o.Logger, keyCache: map[string]*cachedKey{}}
	u.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_unseal_requests_total", Help: "SealedSecrets the unsealer processed."}, []string{"result"})
	u.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyway_unseal_errors_total", Help: "Unseal failures by reason."}, []string{"reason"})
	u.decrypts = prometheus.NewCounter(prometheus.CounterOpts{Name: "keyway_unseal_rsa_decryptions_total", Help: "RSA decryptions spent, to see the sealing-key hint at work."})
	o.Registry.MustRegister(u.requests, u.errors, u.decrypts,
		ctl.PanicCounter("keyway_unseal_panics_total", "Reconciles that panicked (recovered; the SealedSecret is retried with back-off).", func() *ctl.Queue { return u.queue }))

	u.bcast = record.NewBroadcaster()
	u.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	u.rec = u.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "keyway-unsealer"})
	u.queue = ctl.NewQueue()

	// The informers' first lists come a page at a time, each page turned into entries before
	// the next: a first list of 10,000 SealedSecrets, or of every Secret of the cluster,
	// never holds more than one page of decoded objects.
	res := dyn.Resource(SealedSecretGVR)
	u.ssInf = ctl.PagedInformer(func(ctx context.Context, opts metav1.ListOptions) ([]unstructured.Unstructured, metav1.ListMeta, error) {
		l, err := res.List(ctx, opts)
		if err != nil {
			return nil, metav1.ListMeta{}, err
		}
		return l.Items, metav1.ListMeta{ResourceVersion: l.GetResourceVersion(), Continue: l.GetContinue()}, nil
	}, res.Watch, &unstructured.Unstructured{}, o.ResyncPeriod, cache.Indexers{}, u.trimSealedSecret)
	_, _ = u.ssInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { u.enqueue(obj, ctl.High) },
		// A resync hands over the object unchanged: that check waits behind real work.
		UpdateFunc: func(o, n any) {
			p := ctl.High
			if o.(metav1.Object).GetResourceVersion() == n.(metav1.Object).GetResourceVersion() {
				p = ctl.Low
			}
			u.enqueue(n, p)
		},
	})
	u.secInf = ctl.SecretInformer(kube, secretIndexers, u.trimSecret)
	u.secrets = u.secInf.GetIndexer()
	// A managed Secret that is deleted or edited by hand is put back at once, not at the
	// next resync; the reconcile of one that still matches writes nothing.
	ctl.WatchOwned(u.secInf, sealing.APIVersion, sealing.Kind, func(key string) { u.queue.Add(key, ctl.High) })
	return u
}

func (u *Unsealer) enqueue(obj any, p ctl.Priority) {
	if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		u.queue.Add(key, p)
	}
}

// Start starts the informers and waits for their caches; call it on every replica (the
// HTTP endpoints need the key ring).
func (u *Unsealer) Start(ctx context.Context) error {
	// Secrets first: SealedSecrets whose Secrets are proven arrive without their
	// ciphertexts.
	go u.secInf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), u.secInf.HasSynced) {
		return errors.New("informer caches did not sync")
	}
	go u.ssInf.RunWithContext(ctx)
	for _, synced := range []cache.InformerSynced{u.ssInf.HasSynced, u.secInf.HasSynced} {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			return errors.New("informer caches did not sync")
		}
	}
	return nil
}

// Run reconciles until ctx ends; only the leader runs it. It makes the first key when the
// ring is empty and renews keys on schedule.
func (u *Unsealer) Run(ctx context.Context) error {
	defer u.queue.ShutDown()
	defer u.bcast.Shutdown()
	if err := u.renewKeys(ctx); err != nil {
		return err
	}
	if u.opts.KeyRenewPeriod > 0 {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			if err := u.renewKeys(ctx); err != nil {
				u.log.Error("key renewal failed", "error", err)
			}
		}, min(u.opts.KeyRenewPeriod, time.Hour))
	}
	ctl.RunWorkers(ctx, u.opts.Workers, u.queue, u.log, u.handle)
	return nil
}

// handle reconciles one SealedSecret and settles its key in the queue.
func (u *Unsealer) handle(ctx context.Context, key string) {
	err := u.reconcile(ctx, key)
	switch {
	case errors.Is(err, errRejected):
		// The API server will refuse it again: the condition and event say why; a new
		// generation of the SealedSecret (or a resync) tries again, not the back-off.
		u.queue.Forget(key)
	case apierrors.IsConflict(err):
		// Written meanwhile; the cache brings the new version and the retry uses it.
		u.queue.Retry(key)
	case err != nil:
		u.log.Warn("reconcile failed; retrying", "sealedsecret", key, "error", err)
		u.queue.Retry(key)
	default:
		u.queue.Forget(key)
	}
}

// Keys returns the ring, newest first, parsing each key Secret once per resourceVersion.
func (u *Unsealer) Keys() ([]*sealing.Key, error) {
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: sealing.KeyLabel, Operator: metav1.LabelSelectorOpExists}}})
	if err != nil {
		return nil, err
	}
	items, err := u.secrets.ByIndex(ringIndex, u.opts.Namespace)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var keys []*sealing.Key
	for _, item := range items {
		s := item.(*secretEntry).whole
		if s == nil || !sel.Matches(labels.Set(s.Labels)) {
			continue
		}
		c, ok := u.keyCache[s.Name]
		if !ok || c.rv != s.ResourceVersion {
			parsed, err := sealing.KeysFromSecrets([]corev1.Secret{*s})
			if err != nil {
				return nil, err
			}
			if len(parsed) == 0 {
				continue
			}
			c = &cachedKey{rv: s.ResourceVersion, key: parsed[0]}
			u.keyCache[s.Name] = c
		}
		keys = append(keys, c.key)
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Created.After(keys[j].Created) })
	return keys, nil
}

func (u *Unsealer) renewKeys(ctx context.Context) error {
	ring := sealing.Ring{Client: u.kube, Namespace: u.opts.Namespace}
	keys, err := ring.Keys(ctx)
	if err != nil {
		return err
	}
	if len(keys) > 0 && (u.opts.KeyRenewPeriod <= 0 || time.Since(keys[0].Created) < u.opts.KeyRenewPeriod) {
		return nil
	}
	k, err := ring.Generate(ctx, u.opts.KeyBits)
	if err != nil {
		return err
	}
	u.log.Info("generated a new sealing key", "secret", u.opts.Namespace+"/"+k.Name, "fingerprint", sealing.Fingerprint(&k.Private.PublicKey))
	return nil
}

func privateKeys(keys []*sealing.Key) []*rsa.PrivateKey {
	out := make([]*rsa.PrivateKey, len(keys))
	for i, k := range keys {
		out[i] = k.Private
	}
	return out
}

// Outcome is what one reconcile did to a SealedSecret's Secret.
type Outcome string

const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Restored  Outcome = "restored"  // the Secret had been changed by someone else and was put back
	Unchanged Outcome = "unchanged" // the Secret already held what the SealedSecret says: no write
	Refused   Outcome = "refused"   // a Secret the SealedSecret does not manage is in the way
	Failed    Outcome = "failed"    // the SealedSecret cannot be parsed or unsealed
)

// reconcile brings one SealedSecret's Secret up to date. Reads come from the informers'
// caches; writes — the Secret, an event, the status — happen only when something changed,
// so a periodic resync of settled objects costs no request to the API server.
func (u *Unsealer) reconcile(ctx context.Context, key string) error {
	item, exists, err := u.ssInf.GetStore().GetByKey(key)
	if err != nil || !exists {
		return nil
	}
	e := item.(*sealedEntry)
	outcome, e, err := u.unseal(ctx, e)
	if err != nil {
		return err
	}
	u.requests.WithLabelValues(string(outcome)).Inc()
	switch outcome {
	case Created, Updated:
		u.rec.Event(e, corev1.EventTypeNormal, "Unsealed", "SealedSecret unsealed successfully")
		fallthrough
	case Unchanged, Restored:
		return u.setStatus(ctx, e, metav1.ConditionTrue, "Unsealed", "")
	}
	return nil
}

// unseal brings e's Secret up to date and returns the entry it went by (read anew from the
// API server when the cache had dropped the ciphertexts). A SealedSecret whose spec and
// annotations are as they were when its Secret was last seen right, with that Secret
// unchanged since, is Unchanged without a decryption, and so is one whose Secret carries a
// valid proof: a resync or a restart over settled objects costs no RSA work.
func (u *Unsealer) unseal(ctx context.Context, e *sealedEntry) (Outcome, *sealedEntry, error) {
	if existing, ok := u.secret(e.Namespace, e.Name); ok {
		if e.settledRV != "" && e.settledRV == existing.ResourceVersion {
			return Unchanged, e, nil
		}
		// Not seen settled by this process (it just started, or the Secret changed): the
		// Secret's proof says whether it is what this generation unseals to, without
		// decrypting.
		if existing.proof != "" {
			if ring, err := u.Keys(); err == nil && verifyProof(ring, e.mark, existing.proof, existing.digest) {
				e.settledRV, e.sealed = existing.ResourceVersion, nil
				return Unchanged, e, nil
			}
		}
	}
	if e.sealed == nil {
		// The cache kept no ciphertexts (the Secret was proven when the object arrived);
		// it must be unsealed again now, so read them.
		full, err := u.dyn.Resource(SealedSecretGVR).Namespace(e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return Unchanged, e, nil // deleted meanwhile
		}
		if err != nil {
			return "", e, err
		}
		e = newSealedEntry(full)
		e.keep(full)
	}
	outcome, rv, err := u.write(ctx, e)
	if rejected(err) {
		u.fail(ctx, e, "ErrSecretRejected", fmt.Sprintf("the API server refuses Secret %s/%s: %s", e.Namespace, e.Name, redact.APIError(err)))
		return Failed, e, errRejected
	}
	if err == nil && outcome != Failed && outcome != Refused {
		e.settledRV, e.sealed = rv, nil // settled: the ciphertexts are read again if ever needed
	}
	return outcome, e, err
}

// write unseals e (which holds the whole object) and creates or updates its Secret,
// returning the Secret's resourceVersion afterwards. The cache keeps no values, so an
// existing Secret is read from the API server first: one read for each write.
func (u *Unsealer) write(ctx context.Context, e *sealedEntry) (Outcome, string, error) {
	ns, name := e.Namespace, e.Name
	var ss sealing.SealedSecret
	if err := json.Unmarshal(e.sealed, &ss); err != nil {
		u.fail(ctx, e, "ErrParse", "the SealedSecret is malformed: "+err.Error())
		return Failed, "", nil
	}
	keys, err := u.Keys()
	if err != nil {
		return "", "", err
	}
	if len(keys) == 0 {
		// Run makes the first key before reconciling, but the cache may not show it yet:
		// retry (with the queue's back-off) rather than fail the SealedSecret.
		return "", "", errors.New("no sealing key in the cache yet")
	}
	secret, tries, err := sealing.Unseal(ctx, rand.Reader, &ss, privateKeys(keys))
	u.decrypts.Add(float64(tries))
	if err != nil {
		u.fail(ctx, e, "ErrUnsealFailed", err.Error())
		return Failed, "", nil
	}
	if !metav1.IsControlledBy(secret, e) {
		// The template asked to keep its own owners: the managed annotation is then what
		// lets later reconciles update the Secret.
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		secret.Annotations[AnnotationManaged] = "true"
	}
	api := u.kube.CoreV1().Secrets(ns)
	var existing *corev1.Secret
	if _, cached := u.secret(ns, name); cached {
		existing, err = api.Get(ctx, name, metav1.GetOptions{})
	} else {
		err = apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	switch {
	case apierrors.IsNotFound(err):
		prove(keys, e.mark, secret)
		created, err := api.Create(ctx, secret, metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			return Created, created.ResourceVersion, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", "", err
		}
		// The cache had not seen it yet.
		if existing, err = api.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return "", "", err
		}
	case err != nil:
		return "", "", err
	}
	switch {
	case metav1.IsControlledBy(existing, e), existing.Annotations[AnnotationManaged] == "true":
		upd := existing.DeepCopy()
		upd.Data, upd.Type, upd.Immutable = secret.Data, secret.Type, secret.Immutable
		upd.Labels = secret.Labels
		upd.Annotations = mergeAnnotations(existing.Annotations, secret.Annotations)
		upd.OwnerReferences = secret.OwnerReferences
		prove(keys, e.mark, upd)
		if ctl.SameSecret(existing, upd) {
			return Unchanged, existing.ResourceVersion, nil
		}
		// Settled before (Synced for this generation) and now different: someone changed
		// the Secret, not the SealedSecret.
		drifted := e.is(metav1.ConditionTrue, "Unsealed", "")
		updated, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return "", "", err
		}
		if drifted {
			u.rec.Eventf(e, corev1.EventTypeWarning, "SecretDrift", "Secret %s/%s was changed by %s; restored from the SealedSecret", ns, name, changedBy(existing))
			return Restored, updated.ResourceVersion, nil
		}
		return Updated, updated.ResourceVersion, nil
	case existing.Annotations[AnnotationPatch] == "true":
		upd := existing.DeepCopy()
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		maps.Copy(upd.Data, secret.Data)
		if ctl.SameSecret(existing, upd) {
			return Unchanged, existing.ResourceVersion, nil
		}
		updated, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return "", "", err
		}
		return Updated, updated.ResourceVersion, nil
	}
	u.fail(ctx, e, "ErrUnmanagedSecret", fmt.Sprintf("Secret %s/%s exists and is not managed by this SealedSecret; annotate it %s: \"true\" to let keyway take it over", ns, name, AnnotationManaged))
	return Refused, "", nil
}

// FieldManager is the name the unsealer writes Secrets under (managedFields).
const FieldManager = "keyway-unsealer"

// changedBy names the manager of the most recent write to s that was not the unsealer's,
// from its managedFields: who to ask about a hand edit. Never a value.
func changedBy(s *corev1.Secret) string {
	who, when := "", time.Time{}
	for _, f := range s.ManagedFields {
		if f.Manager == FieldManager || f.Time == nil {
			continue
		}
		if who == "" || f.Time.After(when) {
			who, when = f.Manager, f.Time.Time
		}
	}
	if who == "" {
		return "an unknown manager"
	}
	return fmt.Sprintf("%q (%s)", who, strings.ToLower(string(managedOp(s, who))))
}

func managedOp(s *corev1.Secret, manager string) metav1.ManagedFieldsOperationType {
	for _, f := range s.ManagedFields {
		if f.Manager == manager {
			return f.Operation
		}
	}
	return ""
}

func mergeAnnotations(existing, tmpl map[string]string) map[string]string {
	out := maps.Clone(tmpl)
	if out == nil {
		out = map[string]string{}
	}
	if v, ok := existing[AnnotationManaged]; ok {
		out[AnnotationManaged] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// errRejected marks a Secret the API server refused for what it is (invalid, too large):
// retrying the same write cannot succeed.
var errRejected = errors.New("secret rejected")

// rejected reports whether err is the API server refusing the Secret itself, as it will
// every time: invalid (a field, an immutable Secret), too large, or a bad request.
func rejected(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsBadRequest(err)
}

// fail records a failure as a metric and, when it is news (the Synced condition does not
// already say it), a Warning event and the condition. Messages name objects and reasons,
// never values.
func (u *Unsealer) fail(ctx context.Context, e *sealedEntry, reason, msg string) {
	u.errors.WithLabelValues(reason).Inc()
	if e.is(metav1.ConditionFalse, reason, msg) {
		return
	}
	u.rec.Event(e, corev1.EventTypeWarning, reason, msg)
	u.log.Warn("unseal failed", "sealedsecret", e.Namespace+"/"+e.Name, "reason", reason, "message", msg)
	if err := u.setStatus(ctx, e, metav1.ConditionFalse, reason, msg); err != nil {
		u.log.Warn("status update failed", "sealedsecret", e.Namespace+"/"+e.Name, "error", err)
	}
}

// setStatus writes the Synced condition, unless the status already says it, as a merge
// patch of the status alone, conditional on the resourceVersion the entry was read at (a
// newer object is reconciled again instead).
func (u *Unsealer) setStatus(ctx context.Context, e *sealedEntry, status metav1.ConditionStatus, reason, msg string) error {
	if e.is(status, reason, msg) {
		return nil
	}
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := map[string]any{"type": "Synced", "status": string(status), "reason": reason, "message": msg, "lastUpdateTime": now, "lastTransitionTime": now}
	if e.synced.set && e.synced.status == status && e.synced.lastTransitionTime != "" {
		cond["lastTransitionTime"] = e.synced.lastTransitionTime
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": e.ResourceVersion},
		"status":   map[string]any{"observedGeneration": e.Generation, "conditions": []any{cond}},
	})
	if err != nil {
		return err
	}
	_, err = u.dyn.Resource(SealedSecretGVR).Namespace(e.Namespace).Patch(ctx, e.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsConflict(err) {
		u.queue.Add(e.Namespace+"/"+e.Name, ctl.High)
		return nil
	}
	return err
}
