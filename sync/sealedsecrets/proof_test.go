package sealedsecrets

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/sealing"
)

// TestProof: the proof holds for the content it was made for and breaks when anything that
// decides the Secret changes — the SealedSecret's generation, UID or annotations, the data,
// type, labels, other annotations — or when the key is not in the ring.
func TestProof(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	key := &sealing.Key{Name: "k1", Private: priv}
	ring := []*sealing.Key{key}
	obj := &unstructured.Unstructured{}
	obj.SetUID("uid-1")
	obj.SetGeneration(3)
	secret := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}},
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"pw": []byte("v"), "user": []byte("u")}}
	}
	verify := func(ring []*sealing.Key, obj *unstructured.Unstructured, s *corev1.Secret) bool {
		return verifyProof(ring, settledMark(obj), s.Annotations[AnnotationUnsealedFrom], contentDigest(s))
	}
	s := secret()
	prove(ring, settledMark(obj), s)
	if !verify(ring, obj, s) {
		t.Fatal("a fresh proof does not verify")
	}
	// No ring (nothing sealed needs one yet): no proof, and no crash.
	bare := secret()
	prove(nil, settledMark(obj), bare)
	if _, ok := bare.Annotations[AnnotationUnsealedFrom]; ok || verify(ring, obj, bare) {
		t.Fatal("a Secret proven without a key")
	}
	for name, tamper := range map[string]func(o *unstructured.Unstructured, s *corev1.Secret){
		"data": func(_ *unstructured.Unstructured, s *corev1.Secret) { s.Data["pw"] = []byte("w") },
		"a key moved": func(_ *unstructured.Unstructured, s *corev1.Secret) {
			s.Data = map[string][]byte{"pwu": []byte("v"), "ser": []byte("u")}
		},
		"type":       func(_ *unstructured.Unstructured, s *corev1.Secret) { s.Type = corev1.SecretTypeTLS },
		"label":      func(_ *unstructured.Unstructured, s *corev1.Secret) { s.Labels["a"] = "x" },
		"annotation": func(_ *unstructured.Unstructured, s *corev1.Secret) { s.Annotations["e"] = "f" },
		"generation": func(o *unstructured.Unstructured, _ *corev1.Secret) { o.SetGeneration(4) },
		"uid":        func(o *unstructured.Unstructured, _ *corev1.Secret) { o.SetUID("uid-2") },
		"scope": func(o *unstructured.Unstructured, _ *corev1.Secret) {
			o.SetAnnotations(map[string]string{"sealedsecrets.bitnami.com/cluster-wide": "true"})
		},
		"another key": func(_ *unstructured.Unstructured, s *corev1.Secret) {
			prove([]*sealing.Key{{Name: "k1", Private: other}}, settledMark(obj), s)
		},
		"unknown key": func(_ *unstructured.Unstructured, s *corev1.Secret) {
			prove([]*sealing.Key{{Name: "k9", Private: priv}}, settledMark(obj), s)
		},
		"garbage proof": func(_ *unstructured.Unstructured, s *corev1.Secret) {
			s.Annotations[AnnotationUnsealedFrom] = "v1:k1:AAAA"
		},
	} {
		o := obj.DeepCopy()
		s := secret()
		prove(ring, settledMark(o), s)
		tamper(o, s)
		if verify(ring, o, s) {
			t.Errorf("%s: the proof still verifies", name)
		}
	}
}
