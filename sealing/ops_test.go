package sealing

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSealAllOrderAndErrors(t *testing.T) {
	ks := keys(t, 3)
	pubs := []*rsa.PublicKey{&ks[0].PublicKey, &ks[1].PublicKey, &ks[2].PublicKey}
	var in []*corev1.Secret
	for i := range 4 {
		s := secret()
		s.Name = fmt.Sprintf("s%d", i)
		in = append(in, s)
	}
	out, err := SealAll(in, pubs, SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in)*len(pubs) {
		t.Fatalf("%d SealedSecrets, want %d", len(out), len(in)*len(pubs))
	}
	for j, ss := range out {
		i, p := j/len(pubs), j%len(pubs)
		if ss.Metadata.Name != in[i].Name || ss.Metadata.Annotations[AnnotationSealingKey] != Fingerprint(pubs[p]) {
			t.Fatalf("out[%d] = %s for %s, want %s for key %d", j, ss.Metadata.Name, ss.Metadata.Annotations[AnnotationSealingKey], in[i].Name, p)
		}
		if _, _, err := Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{ks[p]}); err != nil {
			t.Fatalf("out[%d] does not open with key %d: %v", j, p, err)
		}
	}
	in[2].Namespace = ""
	in[3].Namespace = ""
	_, err = SealAll(in, pubs, SealOptions{})
	var ie *ItemError
	if !errors.As(err, &ie) || ie.Item != 2 || !strings.Contains(err.Error(), "no metadata.namespace") {
		t.Fatalf("err = %v, want an ItemError for item 2", err)
	}
}

// TestReEncryptKeepsTemplate: re-encryption moves the values to the new key and keeps the
// template as written (its data are templates, not values) and the scope.
func TestReEncryptKeepsTemplate(t *testing.T) {
	ks := keys(t, 2)
	tmpl := `{{ .user }}@db`
	s := secret()
	s.Annotations = map[string]string{AnnotationNamespaceWide: "true"}
	ss, err := Seal(rand.Reader, &ks[0].PublicKey, s, SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ss.Spec.Template.Data = map[string]*string{"password": &tmpl}
	ss.Metadata.UID, ss.Metadata.ResourceVersion = "u1", "42"
	re, err := ReEncrypt(ss, []*rsa.PrivateKey{ks[0]}, []*rsa.PublicKey{&ks[1].PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(re) != 1 || re[0].Metadata.UID != "" || re[0].Metadata.ResourceVersion != "" || scopeOf(re[0].Metadata.Annotations) != NamespaceWide ||
		re[0].Spec.Template.Data["password"] == nil || *re[0].Spec.Template.Data["password"] != tmpl {
		t.Fatalf("re-encrypted = %+v", re[0])
	}
	if _, _, err := Unseal(t.Context(), rand.Reader, re[0], []*rsa.PrivateKey{ks[0]}); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("the old key still opens it: %v", err)
	}
	got, _, err := Unseal(t.Context(), rand.Reader, re[0], []*rsa.PrivateKey{ks[1]})
	if err != nil {
		t.Fatal(err)
	}
	// The template renders over the original password, which was re-encrypted untouched.
	moved := *re[0]
	moved.Spec.Template.Data = nil
	raw, _, _ := Unseal(t.Context(), rand.Reader, &moved, []*rsa.PrivateKey{ks[1]})
	if string(got.Data["password"]) != "admin@db" || string(raw.Data["password"]) != "CANARY-pw" {
		t.Fatalf("templated = %q, raw = %q", got.Data["password"], raw.Data["password"])
	}
}

func TestMergeFile(t *testing.T) {
	k := keys(t, 1)[0]
	base, _ := Seal(rand.Reader, &k.PublicKey, secret(), SealOptions{})
	add := secret()
	add.Data, add.StringData = map[string][]byte{"token": []byte("t")}, nil
	extra, _ := Seal(rand.Reader, &k.PublicKey, add, SealOptions{})
	for _, format := range []string{"json", "yaml"} {
		file, err := Encode([]any{base}, format)
		if err != nil {
			t.Fatal(err)
		}
		merged, err := MergeFile(file, extra)
		if err != nil {
			t.Fatal(err)
		}
		if (format == "json") != strings.HasPrefix(string(merged), "{") {
			t.Fatalf("%s file came back as:\n%s", format, merged)
		}
		if !strings.Contains(string(merged), "token") || !strings.Contains(string(merged), "password") {
			t.Fatalf("merged %s lacks a key:\n%s", format, merged)
		}
	}
	other := *extra
	other.Metadata = metav1.ObjectMeta{Name: "other", Namespace: "shop"}
	file, _ := Encode([]any{base}, "yaml")
	if _, err := MergeFile(file, &other); err == nil || !strings.Contains(err.Error(), "shop/db") {
		t.Fatalf("merging another Secret: err = %v", err)
	}
}
