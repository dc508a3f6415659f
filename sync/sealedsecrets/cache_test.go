package sealedsecrets

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/keyway-dev/keyway/sealing"
)

// TestCacheEntries: the caches keep no Secret value and no ciphertext of a proven
// SealedSecret, yet a proof checks against the cached entry; a key of the ring is kept
// whole; kubectl's last-applied copy changes nothing.
func TestCacheEntries(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	ring := sealing.Ring{Client: client, Namespace: "keys"}
	if _, err := ring.Generate(ctx, 2048); err != nil {
		t.Fatal(err)
	}
	list, err := client.CoreV1().Secrets("keys").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("ring: %v %d", err, len(list.Items))
	}
	u := &Unsealer{opts: Options{Namespace: "keys"}, keyCache: map[string]*cachedKey{},
		secrets: cache.NewIndexer(cache.MetaNamespaceKeyFunc, secretIndexers)}
	add := func(obj any) any {
		t.Helper()
		e, err := u.trimSecret(obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.secrets.Add(e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := add(list.Items[0].DeepCopy()).(*secretEntry); e.whole == nil || len(e.whole.Data) == 0 {
		t.Fatal("the ring's key was not kept whole")
	}
	keys, err := u.Keys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys: %v %d", err, len(keys))
	}

	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": sealing.APIVersion, "kind": sealing.Kind,
		"metadata": map[string]any{"name": "db", "namespace": "shop", "uid": "uid-1", "generation": int64(2), "resourceVersion": "7",
			"annotations": map[string]any{corev1.LastAppliedConfigAnnotation: "{CANARY-ciphertext}", sealing.AnnotationSealingKey: "fp"}},
		"spec":   map[string]any{"encryptedData": map[string]any{"pw": "CANARY-ciphertext"}},
		"status": map[string]any{"observedGeneration": int64(2), "conditions": []any{map[string]any{"type": "Synced", "status": "True", "reason": "Unsealed"}}},
	}}
	yes := true
	owned := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", ResourceVersion: "9",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: sealing.APIVersion, Kind: sealing.Kind, Name: "db", UID: "uid-1", Controller: &yes}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: map[string][]byte{"pw": []byte("CANARY-value")}}
	prove(keys, settledMark(obj), owned)

	// Unproven (no Secret cached yet): the whole object stays, ready to unseal.
	e, _ := u.trimSealedSecret(obj.DeepCopy())
	if se := e.(*sealedEntry); se.sealed == nil || !se.is(metav1.ConditionTrue, "Unsealed", "") {
		t.Fatalf("unproven entry: sealed %v, synced %+v", se.sealed != nil, se.synced)
	}
	se := add(owned.DeepCopy()).(*secretEntry)
	if se.whole != nil || se.ManagedFields != nil || bytes.Contains([]byte(fmt.Sprintf("%+v", *se)), []byte("CANARY")) {
		t.Fatalf("the cached Secret holds more than it should: %+v", *se)
	}
	if metav1.GetControllerOf(se) == nil {
		t.Fatal("the owner was dropped: drift would go unseen")
	}
	// Proven: only metadata and the condition stay; the proof checks against the digest.
	e, _ = u.trimSealedSecret(obj.DeepCopy())
	entry := e.(*sealedEntry)
	if entry.sealed != nil {
		t.Fatal("a proven SealedSecret kept its ciphertexts")
	}
	if strings.Contains(entry.mark, "CANARY") || !strings.Contains(entry.mark, "fp") {
		t.Fatalf("the mark should hold the annotations but not the last-applied copy: %q", entry.mark)
	}
	// An edit of the Secret breaks it.
	edited := owned.DeepCopy()
	edited.Data["pw"] = []byte("other")
	edited.ResourceVersion = "10"
	add(edited)
	if e, _ := u.trimSealedSecret(obj.DeepCopy()); e.(*sealedEntry).sealed == nil {
		t.Fatal("an edited Secret still counts as proven")
	}

	// Any other Secret: its name, nothing else.
	other := add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.x.v1", Namespace: "shop", Labels: map[string]string{"owner": "helm"},
		Annotations: map[string]string{"a": "b"}}, Data: map[string][]byte{"release": []byte("CANARY-release")}}).(*secretEntry)
	if other.Labels != nil || other.Annotations != nil || other.whole != nil || other.digest != ([32]byte{}) {
		t.Fatalf("an unrelated Secret cached with more than its name: %+v", *other)
	}
}
