package externalsecrets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	ctl "github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/providers"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

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
	if err := esv1.SecretStoreFields.Check(u.Object); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
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
	if p == nil {
		return nil, refusal{what + " has no provider"}
	}
	var named []storeAdapter
	for _, a := range storeAdapters {
		if a.names(p) {
			named = append(named, a)
		}
	}
	switch len(named) {
	case 0:
		return nil, refusal{what + ": only the vault, aws, gcpsm and fake providers are supported"}
	case 1:
		return named[0].resolve(s, ctx, what, st.Namespace, p)
	}
	// ESO takes exactly one provider: more is refused, not resolved by an order of ours.
	return nil, refusal{fmt.Sprintf("%s names %s and %s: a store has one provider", what, named[0].name, named[1].name)}
}

// storeAdapter maps one External Secrets provider of a store onto a keyway backend's
// settings. Each lives in a file of its own (store_<backend>.go) and is listed once, in
// storeAdapters.
type storeAdapter struct {
	name    string                                 // ESO's field name (spec.provider.<name>)
	names   func(p *esv1.SecretStoreProvider) bool // the store names this provider
	resolve func(s *Syncer, ctx context.Context, what, ns string, p *esv1.SecretStoreProvider) (*storeConfig, error)
}

// storeAdapters are the providers a store may name.
var storeAdapters = []storeAdapter{vaultAdapter, awsAdapter, gcpsmAdapter, fakeAdapter}

// fakeAdapter is ESO's fake provider: the values are in the store.
var fakeAdapter = storeAdapter{
	name:  "fake",
	names: func(p *esv1.SecretStoreProvider) bool { return p.Fake != nil },
	resolve: func(_ *Syncer, _ context.Context, _, _ string, p *esv1.SecretStoreProvider) (*storeConfig, error) {
		fake := map[string]string{}
		for _, d := range p.Fake.Data {
			fake[d.Key+"\x00"+d.Version] = d.Value
		}
		return &storeConfig{backend: "fake", fake: fake}, nil
	},
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
	} else if err := esv1.SecretStoreFields.Check(u.Object); err != nil {
		status, reason, msg = corev1.ConditionFalse, "InvalidStoreConfig", fmt.Sprintf("%s: %v", what, err)
	} else if cfg, err := s.resolve(ctx, what, &st); err != nil {
		status, reason, msg = corev1.ConditionFalse, "InvalidProviderConfig", err.Error()
	} else if cfg.backend != "fake" {
		clients := s.pool.Clients(map[string]providers.Settings{cfg.backend: cfg.settings})
		c, err := clients.Client(ctx, cfg.backend)
		if ch, ok := c.(providers.Checker); ok && err == nil {
			err = ch.Check(ctx) // as ESO: a token that Vault does not know is not a valid store
		}
		clients.Close()
		if err != nil {
			status, reason, msg = corev1.ConditionFalse, "InvalidProviderConfig", err.Error()
		}
	}
	var again error
	if reason == "InvalidProviderConfig" {
		again = errRevalidate // its credentials or its backend may come back: look again
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Ready" && m["status"] == string(status) && m["reason"] == reason && m["message"] == msg {
			return again
		}
	}
	if status == corev1.ConditionFalse {
		s.rec.Event(u, corev1.EventTypeWarning, reason, msg)
	}
	cond := map[string]any{"type": "Ready", "status": string(status), "reason": reason, "message": msg, "lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
	_ = unstructured.SetNestedSlice(u.Object, []any{cond}, "status", "conditions")
	_ = unstructured.SetNestedField(u.Object, "ReadOnly", "status", "capabilities")
	if _, err = api.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if status == corev1.ConditionTrue {
		// Valid now: what failed on it syncs now, not at its next refresh (or never, with
		// refreshInterval 0).
		s.enqueueUsers(map[bool]string{true: "ClusterSecretStore", false: "SecretStore"}[ns == ""], ns, name)
		return nil
	}
	return again
}

// errRevalidate asks for a store to be validated again with back-off: what it lacks (a
// credential Secret, a reachable backend) may come without a change to the store.
var errRevalidate = errors.New("store invalid; validated again with back-off")

// enqueueUsers queues the ExternalSecrets that name the store.
func (s *Syncer) enqueueUsers(kind, ns, name string) {
	for _, item := range s.esInf.GetStore().List() {
		es := item.(*unstructured.Unstructured)
		n, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "name")
		k, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "kind")
		if k == "" {
			k = "SecretStore"
		}
		if n == name && k == kind && (kind == "ClusterSecretStore" || es.GetNamespace() == ns) {
			s.enqueue(es)
		}
	}
}

// credentialsChanged queues for validation the invalid stores a new or changed Secret could
// be the credentials of: the namespace's SecretStores and every ClusterSecretStore (valid
// stores are left alone: their Secret's change reaches them at their next use).
func (s *Syncer) credentialsChanged(obj any) {
	sec, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	for gvr, inf := range s.storeInfs {
		prefix := storePrefix
		if gvr == ClusterSecretStoreGVR {
			prefix = clusterStorePrefix
		}
		for _, item := range inf.GetStore().List() {
			st := item.(*unstructured.Unstructured)
			if (gvr == SecretStoreGVR && st.GetNamespace() != sec.GetNamespace()) || storeReady(st) {
				continue
			}
			if key, err := cache.MetaNamespaceKeyFunc(st); err == nil {
				s.queue.Add(prefix+key, ctl.High)
			}
		}
	}
}

// storeReady reports whether a store's Ready condition is True.
func storeReady(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Ready" {
			return m["status"] == string(corev1.ConditionTrue)
		}
	}
	return false
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
		return "", refusal{fmt.Sprintf("%s: %s: Secret %s/%s: %v", what, field, from, sel.Name, redact.APIOutcome(err))}
	}
	val, ok := sec.Data[sel.Key]
	if !ok {
		return "", refusal{fmt.Sprintf("%s: %s: Secret %s/%s has no key %q", what, field, from, sel.Name, sel.Key)}
	}
	return string(val), nil
}

// ambient refuses a namespaced SecretStore without credentials unless the operator lets
// those use the controller's own identity: it would read with the controller's rights.
func (s *Syncer) ambient(what, ns, field string) error {
	if ns == "" || s.opts.AmbientCredentials {
		return nil
	}
	return refusal{fmt.Sprintf("%s: %s names no credentials, and a SecretStore may not use the controller's own identity (a ClusterSecretStore may; the operator allows it for SecretStores with --allow-ambient-credentials)", what, field)}
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
		return "", refusal{fmt.Sprintf("%s: a token for service account %s/%s: %s", what, ns, sa.Name, redact.APIOutcome(err))}
	}
	life := time.Until(tr.Status.ExpirationTimestamp.Time)
	s.tokens[key] = saToken{token: tr.Status.Token, renewAt: time.Now().Add(life * 2 / 3)}
	return tr.Status.Token, nil
}

type saToken struct {
	token   string
	renewAt time.Time
}
