package sealedsecrets

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/keyway-dev/keyway/sealing"
)

// The unsealer watches every SealedSecret and every Secret of the cluster. Its caches keep,
// of each, a small typed entry with what it decides from — never a decoded object, never a
// Secret's values — so its memory per object is a few hundred bytes whatever the objects
// hold (Helm's release Secrets, large ciphertexts), and unsealed values are in its memory
// only while an unseal writes them (its key ring is, of course, always there).

// sealedEntry is what the cache keeps of a SealedSecret: its name, UID, resourceVersion and
// generation, its settledMark (which its annotations — the scope, the key hint — are folded
// into: the entry's own Annotations stay empty), its Synced condition and — only while its
// Secret is not proven to be what it unseals to — the whole object, ciphertexts included.
// Settled SealedSecrets are read again from the API server only to be unsealed anew.
type sealedEntry struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	mark   string
	synced syncedCondition
	// Only the worker reconciling the entry's key touches these two (the queue hands a key
	// to one worker at a time; a changed object arrives as a new entry):
	// sealed is the object as read, as JSON (a third of its decoded size), without managed
	// fields or last-applied copy; nil once its Secret is proven.
	sealed []byte
	// settledRV is the resourceVersion at which this process last saw the Secret hold what
	// this entry unseals to: while it is still that, a check costs nothing at all.
	settledRV string
}

// syncedCondition is the SealedSecret's status: its Synced condition and the generation
// it was written for.
type syncedCondition struct {
	observedGeneration int64
	set                bool // the status holds a Synced condition
	status             metav1.ConditionStatus
	reason, message    string
	lastTransitionTime string
}

func (e *sealedEntry) DeepCopyObject() runtime.Object {
	c := &sealedEntry{TypeMeta: e.TypeMeta, ObjectMeta: *e.ObjectMeta.DeepCopy(), mark: e.mark, synced: e.synced, settledRV: e.settledRV}
	c.sealed = slices.Clone(e.sealed)
	return c
}

// is reports whether the status already records this Synced condition for the current
// generation.
func (e *sealedEntry) is(status metav1.ConditionStatus, reason, msg string) bool {
	c := e.synced
	return c.set && c.observedGeneration == e.Generation && c.status == status && c.reason == reason && c.message == msg
}

// newSealedEntry makes the cache entry of obj, without its ciphertexts (see keep).
func newSealedEntry(obj *unstructured.Unstructured) *sealedEntry {
	e := &sealedEntry{TypeMeta: metav1.TypeMeta{APIVersion: sealing.APIVersion, Kind: sealing.Kind}}
	e.Name, e.Namespace, e.UID = obj.GetName(), obj.GetNamespace(), obj.GetUID()
	e.ResourceVersion, e.Generation = obj.GetResourceVersion(), obj.GetGeneration()
	e.mark = settledMark(obj)
	e.synced.observedGeneration, _, _ = unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions"); len(conds) > 0 {
		if m, ok := conds[0].(map[string]any); ok && m["type"] == "Synced" {
			str := func(k string) string { s, _ := m[k].(string); return s }
			e.synced.set = true
			e.synced.status = metav1.ConditionStatus(str("status"))
			e.synced.reason, e.synced.message, e.synced.lastTransitionTime = str("reason"), str("message"), str("lastTransitionTime")
		}
	}
	return e
}

// keep stores obj, the object e was made from, in e to be unsealed.
func (e *sealedEntry) keep(obj *unstructured.Unstructured) {
	obj.SetManagedFields(nil)
	if ann := obj.GetAnnotations(); ann[corev1.LastAppliedConfigAnnotation] != "" {
		delete(ann, corev1.LastAppliedConfigAnnotation)
		obj.SetAnnotations(ann)
	}
	e.sealed, _ = json.Marshal(obj.Object) // a map decoded from JSON encodes; if not, unsealing says the object is malformed
}

// settledMark changes whenever anything that decides the Secret may have: the SealedSecret's
// identity, its spec (generation) and its annotations (the scope), kubectl's last-applied
// copy aside.
func settledMark(obj metav1.Object) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d", obj.GetUID(), obj.GetGeneration())
	ann := obj.GetAnnotations()
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if k != corev1.LastAppliedConfigAnnotation {
			fmt.Fprintf(&b, "\x00%s=%s", k, ann[k])
		}
	}
	return b.String()
}

// secretEntry is what the cache keeps of a Secret: its name, resourceVersion and
// controlling SealedSecret (whose it is), its proof and, in place of the values, a digest of
// the content the proof covers. The key ring's Secrets are kept whole.
type secretEntry struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	proof  string // its AnnotationUnsealedFrom
	digest [sha256.Size]byte
	whole  *corev1.Secret // a key of the ring; nil for every other Secret
}

func (e *secretEntry) DeepCopyObject() runtime.Object {
	c := &secretEntry{TypeMeta: e.TypeMeta, ObjectMeta: *e.ObjectMeta.DeepCopy(), proof: e.proof, digest: e.digest}
	if e.whole != nil {
		c.whole = e.whole.DeepCopy()
	}
	return c
}

// The Secret cache is indexed by namespace for the key ring's Secrets only: the unsealer
// lists nothing else, and an index of every Secret of the cluster would cost each its key
// twice more.
const ringIndex = "ring"

var secretIndexers = cache.Indexers{ringIndex: func(obj any) ([]string, error) {
	if e, ok := obj.(*secretEntry); ok && e.whole != nil {
		return []string{e.Namespace}, nil
	}
	return nil, nil
}}

// trimSecret turns a watched Secret into its cache entry.
func (u *Unsealer) trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil // an entry already, or a deletion tombstone
	}
	e := &secretEntry{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
	e.Name, e.Namespace, e.ResourceVersion = s.Name, s.Namespace, s.ResourceVersion
	if s.Namespace == u.opts.Namespace && s.Labels[sealing.KeyLabel] != "" {
		s = s.DeepCopy() // not a pointer into a page of the first list
		s.ManagedFields = nil
		e.Labels, e.whole = s.Labels, s
		return e, nil
	}
	if ref := metav1.GetControllerOf(s); ref != nil && ref.Kind == sealing.Kind && ref.APIVersion == sealing.APIVersion {
		e.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	if e.proof = s.Annotations[AnnotationUnsealedFrom]; e.proof != "" {
		e.digest = contentDigest(s)
	}
	return e, nil
}

// trimSealedSecret turns a watched SealedSecret into its cache entry, which keeps the
// ciphertexts only while its Secret is not proven.
func (u *Unsealer) trimSealedSecret(obj any) (any, error) {
	o, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	e := newSealedEntry(o)
	if !u.proven(e) {
		e.keep(o)
	}
	return e, nil
}

// secret returns the cache entry of Secret ns/name.
func (u *Unsealer) secret(ns, name string) (*secretEntry, bool) {
	item, ok, err := u.secrets.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	e, ok := item.(*secretEntry)
	return e, ok
}

// proven reports whether e's Secret carries a valid proof that it is what e unseals to.
func (u *Unsealer) proven(e *sealedEntry) bool {
	s, ok := u.secret(e.Namespace, e.Name)
	if !ok || s.proof == "" {
		return false
	}
	ring, err := u.Keys()
	return err == nil && verifyProof(ring, e.mark, s.proof, s.digest)
}
