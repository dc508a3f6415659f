package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	ctl "github.com/keyway-dev/keyway/internal/kube"
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
	factory dynamicinformer.DynamicSharedInformerFactory
	kinf    informers.SharedInformerFactory
	keysLs  corelisters.SecretLister

	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	decrypts prometheus.Counter

	mu       sync.Mutex
	keyCache map[string]*cachedKey // by key Secret name
	settled  sync.Map              // SealedSecret key → settled
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
	o.Registry.MustRegister(u.requests, u.errors, u.decrypts)

	u.bcast = record.NewBroadcaster()
	u.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	u.rec = u.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "keyway-unsealer"})
	u.queue = ctl.NewQueue()

	u.factory = dynamicinformer.NewDynamicSharedInformerFactory(dyn, o.ResyncPeriod)
	u.ssInf = u.factory.ForResource(SealedSecretGVR).Informer()
	_ = u.ssInf.SetTransform(u.trimSealedSecret)
	_, _ = u.ssInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { u.enqueue(obj, ctl.High) },
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				u.settled.Delete(key)
			}
		},
		// A resync hands over the object unchanged: that check waits behind real work.
		UpdateFunc: func(o, n any) {
			p := ctl.High
			if o.(*unstructured.Unstructured).GetResourceVersion() == n.(*unstructured.Unstructured).GetResourceVersion() {
				p = ctl.Low
			}
			u.enqueue(n, p)
		},
	})
	u.kinf = informers.NewSharedInformerFactory(kube, 0)
	secrets := u.kinf.Core().V1().Secrets()
	_ = secrets.Informer().SetTransform(u.trimSecret)
	u.keysLs = secrets.Lister()
	// A managed Secret that is deleted or edited by hand is put back at once, not at the
	// next resync; the reconcile of one that still matches writes nothing.
	ctl.WatchOwned(secrets.Informer(), sealing.APIVersion, sealing.Kind, func(key string) { u.queue.Add(key, ctl.High) })
	return u
}

// The caches hold every SealedSecret and every Secret of the cluster; what the unsealer
// never reads is dropped as objects arrive, so memory follows what it manages, not what
// else the cluster stores (Helm's release Secrets, say).

// trimSealedSecret drops managed fields and kubectl's last-applied copy of the object, and
// the sealed values of one whose Secret is proven to be what it unseals to (see
// AnnotationUnsealedFrom): those are read again from the API server only if the Secret
// has to be unsealed anew, so a settled SealedSecret costs the cache its metadata, not its
// ciphertexts.
func (u *Unsealer) trimSealedSecret(obj any) (any, error) {
	o, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	trimMeta(o)
	if u.proven(o) {
		unstructured.RemoveNestedField(o.Object, "spec", "encryptedData")
		unstructured.RemoveNestedField(o.Object, "spec", "data") // the legacy single-blob form
	}
	return o, nil
}

// trimMeta drops what the unsealer never reads from an object's metadata.
func trimMeta(o *unstructured.Unstructured) {
	o.SetManagedFields(nil)
	if ann := o.GetAnnotations(); ann[corev1.LastAppliedConfigAnnotation] != "" {
		delete(ann, corev1.LastAppliedConfigAnnotation)
		o.SetAnnotations(ann)
	}
}

// proven reports whether obj's Secret carries a valid proof that it is what obj unseals to.
func (u *Unsealer) proven(obj *unstructured.Unstructured) bool {
	if u.keysLs == nil {
		return false
	}
	existing, err := u.keysLs.Secrets(obj.GetNamespace()).Get(obj.GetName())
	if err != nil || existing.Annotations[AnnotationUnsealedFrom] == "" {
		return false
	}
	ring, err := u.Keys()
	return err == nil && verifyProof(ring, obj, existing)
}

// sealed reports whether obj still holds its sealed values (the cache drops them from
// proven objects).
func sealed(obj *unstructured.Unstructured) bool {
	_, enc, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "encryptedData")
	_, blob, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "data")
	return enc || blob
}

// trimSecret keeps whole only the Secrets the unsealer may write or read: those a
// SealedSecret controls, those annotated managed or patch, and the key ring's; of every
// other Secret it keeps the metadata that says whether one is in the way.
func (u *Unsealer) trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	if s.Annotations[AnnotationManaged] == "true" || s.Annotations[AnnotationPatch] == "true" ||
		(s.Namespace == u.opts.Namespace && s.Labels[sealing.KeyLabel] != "") {
		return obj, nil
	}
	for _, ref := range s.OwnerReferences {
		if ref.Kind == sealing.Kind && ref.APIVersion == sealing.APIVersion {
			return obj, nil
		}
	}
	s.Data, s.StringData, s.ManagedFields = nil, nil, nil
	delete(s.Annotations, corev1.LastAppliedConfigAnnotation)
	return s, nil
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
	u.kinf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), u.kinf.Core().V1().Secrets().Informer().HasSynced) {
		return errors.New("informer caches did not sync")
	}
	u.factory.Start(ctx.Done())
	for _, synced := range []cache.InformerSynced{u.ssInf.HasSynced, u.kinf.Core().V1().Secrets().Informer().HasSynced} {
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
	for range u.opts.Workers {
		go wait.UntilWithContext(ctx, u.work, time.Second)
	}
	<-ctx.Done()
	return nil
}

func (u *Unsealer) work(ctx context.Context) {
	for {
		key, ok := u.queue.Get()
		if !ok {
			return
		}
		err := u.reconcile(ctx, key)
		if apierrors.IsConflict(err) {
			// Written meanwhile; the cache brings the new version and the retry uses it.
			u.queue.Retry(key)
		} else if err != nil {
			u.log.Warn("reconcile failed; retrying", "sealedsecret", key, "error", err)
			u.queue.Retry(key)
		} else {
			u.queue.Forget(key)
		}
		u.queue.Done(key)
	}
}

// Keys returns the ring, newest first, parsing each key Secret once per resourceVersion.
func (u *Unsealer) Keys() ([]*sealing.Key, error) {
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: sealing.KeyLabel, Operator: metav1.LabelSelectorOpExists}}})
	if err != nil {
		return nil, err
	}
	list, err := u.keysLs.Secrets(u.opts.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var keys []*sealing.Key
	for _, s := range list {
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

// reconcile turns one SealedSecret into its Secret.
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
	obj := item.(*unstructured.Unstructured)
	outcome, err := u.unseal(ctx, obj)
	if err != nil {
		return err
	}
	u.requests.WithLabelValues(string(outcome)).Inc()
	switch outcome {
	case Created, Updated:
		u.rec.Event(obj, corev1.EventTypeNormal, "Unsealed", "SealedSecret unsealed successfully")
		fallthrough
	case Unchanged, Restored:
		return u.setStatus(ctx, obj, metav1.ConditionTrue, "Unsealed", "")
	}
	return nil
}

// unseal brings obj's Secret up to date. A SealedSecret whose spec and annotations are
// as they were when its Secret was last seen right, with that Secret unchanged since, is
// Unchanged without a decryption: a resync of settled objects costs no RSA work either.
func (u *Unsealer) unseal(ctx context.Context, obj *unstructured.Unstructured) (Outcome, error) {
	key := obj.GetNamespace() + "/" + obj.GetName()
	mark := settledMark(obj)
	if existing, err := u.keysLs.Secrets(obj.GetNamespace()).Get(obj.GetName()); err == nil {
		if prev, ok := u.settled.Load(key); ok && prev.(settled) == (settled{mark, existing.ResourceVersion}) {
			return Unchanged, nil
		}
		// Not seen settled by this process (it just started): the Secret's proof says
		// whether it is what this generation unseals to, without decrypting.
		if _, ok := existing.Annotations[AnnotationUnsealedFrom]; ok {
			if ring, err := u.Keys(); err == nil && verifyProof(ring, obj, existing) {
				u.settled.Store(key, settled{mark, existing.ResourceVersion})
				return Unchanged, nil
			}
		}
	}
	if !sealed(obj) {
		// The cache kept no ciphertexts (the Secret was proven when the object arrived);
		// it must be unsealed again now, so read them.
		full, err := u.dyn.Resource(SealedSecretGVR).Namespace(obj.GetNamespace()).Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return Unchanged, nil // deleted meanwhile
		}
		if err != nil {
			return "", err
		}
		trimMeta(full) // as the cache holds it: the proof covers the same annotations
		obj = full
		mark = settledMark(obj)
	}
	outcome, rv, err := u.write(ctx, obj)
	switch {
	case err != nil, outcome == Failed, outcome == Refused:
		u.settled.Delete(key)
	default:
		u.settled.Store(key, settled{mark, rv})
	}
	return outcome, err
}

// settled is the state in which a SealedSecret's Secret was last seen right.
type settled struct {
	sealed   string // settledMark of the SealedSecret
	secretRV string // resourceVersion of the Secret then
}

// settledMark changes whenever anything that decides the Secret may have: the object's
// identity, its spec (generation) and its annotations (the scope).
func settledMark(obj *unstructured.Unstructured) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d", obj.GetUID(), obj.GetGeneration())
	ann := obj.GetAnnotations()
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		fmt.Fprintf(&b, "\x00%s=%s", k, ann[k])
	}
	return b.String()
}

// write unseals obj and creates or updates its Secret, returning the Secret's
// resourceVersion afterwards.
func (u *Unsealer) write(ctx context.Context, obj *unstructured.Unstructured) (Outcome, string, error) {
	ns, name := obj.GetNamespace(), obj.GetName()
	var ss sealing.SealedSecret
	if err := fromUnstructured(obj, &ss); err != nil {
		u.fail(ctx, obj, "ErrParse", "the SealedSecret is malformed: "+err.Error())
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
	secret, tries, err := sealing.Unseal(rand.Reader, &ss, privateKeys(keys))
	u.decrypts.Add(float64(tries))
	if err != nil {
		u.fail(ctx, obj, "ErrUnsealFailed", err.Error())
		return Failed, "", nil
	}
	if !metav1.IsControlledBy(secret, obj) {
		// The template asked to keep its own owners: the managed annotation is then what
		// lets later reconciles update the Secret.
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		secret.Annotations[AnnotationManaged] = "true"
	}
	api := u.kube.CoreV1().Secrets(ns)
	existing, err := u.keysLs.Secrets(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		prove(keys, obj, secret)
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
	case metav1.IsControlledBy(existing, obj), existing.Annotations[AnnotationManaged] == "true":
		upd := existing.DeepCopy()
		upd.Data, upd.Type, upd.Immutable = secret.Data, secret.Type, secret.Immutable
		upd.Labels = secret.Labels
		upd.Annotations = mergeAnnotations(existing.Annotations, secret.Annotations)
		upd.OwnerReferences = secret.OwnerReferences
		prove(keys, obj, upd)
		if sameSecret(existing, upd) {
			return Unchanged, existing.ResourceVersion, nil
		}
		// Settled before (Synced for this generation) and now different: someone changed
		// the Secret, not the SealedSecret.
		drifted := conditionIs(obj, metav1.ConditionTrue, "Unsealed", "")
		updated, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return "", "", err
		}
		if drifted {
			u.rec.Eventf(obj, corev1.EventTypeWarning, "SecretDrift", "Secret %s/%s was changed by %s; restored from the SealedSecret", ns, name, changedBy(existing))
			return Restored, updated.ResourceVersion, nil
		}
		return Updated, updated.ResourceVersion, nil
	case existing.Annotations[AnnotationPatch] == "true":
		upd := existing.DeepCopy()
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		maps.Copy(upd.Data, secret.Data)
		if sameSecret(existing, upd) {
			return Unchanged, existing.ResourceVersion, nil
		}
		updated, err := api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return "", "", err
		}
		return Updated, updated.ResourceVersion, nil
	}
	u.fail(ctx, obj, "ErrUnmanagedSecret", fmt.Sprintf("Secret %s/%s exists and is not managed by this SealedSecret; annotate it %s: \"true\" to let keyway take it over", ns, name, AnnotationManaged))
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

// sameSecret compares what the unsealer writes: data, type, immutability, labels,
// annotations and owners. Empty and absent maps are equal, as the API server stores them.
func sameSecret(a, b *corev1.Secret) bool {
	return maps.EqualFunc(a.Data, b.Data, bytes.Equal) && a.Type == b.Type &&
		equality.Semantic.DeepEqual(a.Immutable, b.Immutable) &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
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

// fail records a failure as a metric and, when it is news (the Synced condition does not
// already say it), a Warning event and the condition. Messages name objects and reasons,
// never values.
func (u *Unsealer) fail(ctx context.Context, obj *unstructured.Unstructured, reason, msg string) {
	u.errors.WithLabelValues(reason).Inc()
	if conditionIs(obj, metav1.ConditionFalse, reason, msg) {
		return
	}
	u.rec.Event(obj, corev1.EventTypeWarning, reason, msg)
	u.log.Warn("unseal failed", "sealedsecret", obj.GetNamespace()+"/"+obj.GetName(), "reason", reason, "message", msg)
	if err := u.setStatus(ctx, obj, metav1.ConditionFalse, reason, msg); err != nil {
		u.log.Warn("status update failed", "sealedsecret", obj.GetNamespace()+"/"+obj.GetName(), "error", err)
	}
}

// conditionIs reports whether obj's status already records this Synced condition for its
// current generation.
func conditionIs(obj *unstructured.Unstructured, status metav1.ConditionStatus, reason, msg string) bool {
	if gen, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); gen != obj.GetGeneration() {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	if len(conds) == 0 {
		return false
	}
	m, _ := conds[0].(map[string]any)
	got, _ := m["message"].(string)
	return m["type"] == "Synced" && m["status"] == string(status) && m["reason"] == reason && got == msg
}

func (u *Unsealer) setStatus(ctx context.Context, obj *unstructured.Unstructured, status metav1.ConditionStatus, reason, msg string) error {
	if conditionIs(obj, status, reason, msg) {
		return nil
	}
	cur := obj.DeepCopy()
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := map[string]any{"type": "Synced", "status": string(status), "reason": reason, "message": msg, "lastUpdateTime": now, "lastTransitionTime": now}
	if old, ok, _ := unstructured.NestedSlice(cur.Object, "status", "conditions"); ok && len(old) > 0 {
		if m, ok := old[0].(map[string]any); ok && m["status"] == string(status) {
			if t, ok := m["lastTransitionTime"]; ok {
				cond["lastTransitionTime"] = t
			}
		}
	}
	_ = unstructured.SetNestedSlice(cur.Object, []any{cond}, "status", "conditions")
	_ = unstructured.SetNestedField(cur.Object, cur.GetGeneration(), "status", "observedGeneration")
	_, err := u.dyn.Resource(SealedSecretGVR).Namespace(cur.GetNamespace()).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		u.queue.Add(cur.GetNamespace()+"/"+cur.GetName(), ctl.High)
		return nil
	}
	return err
}

func fromUnstructured(obj *unstructured.Unstructured, into any) error {
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}
