package sealing

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata vectors")

var (
	keysOnce sync.Once
	testKeys []*rsa.PrivateKey
)

// keys returns n RSA-2048 test keys (generated once per test binary; the format does not
// depend on the key size).
func keys(t testing.TB, n int) []*rsa.PrivateKey {
	t.Helper()
	keysOnce.Do(func() {
		for range 10 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys = append(testKeys, k)
		}
	})
	return testKeys[:n]
}

func secret() *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", Labels: map[string]string{"app": "shop"}},
		Data:       map[string][]byte{"password": []byte("CANARY-pw")},
		StringData: map[string]string{"user": "admin"},
		Type:       corev1.SecretTypeOpaque,
	}
}

func TestSealUnsealScopes(t *testing.T) {
	k := keys(t, 1)[0]
	for _, scope := range []Scope{Strict, NamespaceWide, ClusterWide} {
		t.Run(scope.String(), func(t *testing.T) {
			ss, err := Seal(rand.Reader, &k.PublicKey, secret(), SealOptions{Scope: scope, ScopeSet: true})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data["password"]) != "CANARY-pw" || string(got.Data["user"]) != "admin" || got.Labels["app"] != "shop" {
				t.Fatalf("unsealed = %+v", got)
			}
			// Moving the SealedSecret elsewhere breaks the scope binding where it should.
			moved := *ss
			moved.Metadata.Name, moved.Metadata.Namespace = "other", "elsewhere"
			_, _, err = Unseal(t.Context(), rand.Reader, &moved, []*rsa.PrivateKey{k})
			if (scope == ClusterWide) != (err == nil) {
				t.Fatalf("moved %s SealedSecret: err = %v", scope, err)
			}
			if err != nil && (!errors.Is(err, ErrDecrypt) || strings.Contains(err.Error(), "CANARY")) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestTamperAndWrongKey(t *testing.T) {
	ks := keys(t, 2)
	ss, err := Seal(rand.Reader, &ks[0].PublicKey, secret(), SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := base64.StdEncoding.DecodeString(ss.Spec.EncryptedData["password"])
	ct[len(ct)-1] ^= 1
	tampered := *ss
	tampered.Spec.EncryptedData = map[string]string{"password": base64.StdEncoding.EncodeToString(ct)}
	for name, tc := range map[string]struct {
		ss   *SealedSecret
		keys []*rsa.PrivateKey
	}{
		"tampered":  {&tampered, ks[:1]},
		"wrong key": {ss, ks[1:2]},
		"truncated": {&SealedSecret{Kind: Kind, Spec: Spec{EncryptedData: map[string]string{"k": "AAE="}}}, ks[:1]},
	} {
		if _, _, err := Unseal(t.Context(), rand.Reader, tc.ss, tc.keys); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	k := keys(t, 1)[0]
	noNS := secret()
	noNS.Namespace = ""
	empty := secret()
	empty.Data, empty.StringData = nil, nil
	for name, tc := range map[string]struct {
		s    *corev1.Secret
		want string
	}{
		"no namespace": {noNS, "has no metadata.namespace"},
		"no data":      {empty, "has no data"},
	} {
		if _, err := Seal(rand.Reader, &k.PublicKey, tc.s, SealOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// TestFingerprintHint: with ten keys, the sealing-key annotation makes every value cost one
// RSA decryption; without it, the unsealer may try all ten.
func TestFingerprintHint(t *testing.T) {
	ks := keys(t, 10)
	ss, err := Seal(rand.Reader, &ks[9].PublicKey, secret(), SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, tries, err := Unseal(t.Context(), rand.Reader, ss, ks)
	if err != nil || tries != 2 {
		t.Fatalf("with hint: tries = %d, %v; want 2 (one per value)", tries, err)
	}
	delete(ss.Metadata.Annotations, AnnotationSealingKey)
	_, tries, err = Unseal(t.Context(), rand.Reader, ss, ks)
	if err != nil || tries != 11 {
		t.Fatalf("without hint: tries = %d, %v; want 10 for the first value and 1 after", tries, err)
	}
}

func TestParseCertAndKeys(t *testing.T) {
	k := keys(t, 1)[0]
	now := time.Now()
	certPEM := selfSigned(t, k, now.Add(24*time.Hour))
	if _, err := ParseCert(certPEM, now); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCert(certPEM, now.Add(48*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired cert: err = %v", err)
	}
	if _, err := ParseCert([]byte("garbage"), now); err == nil {
		t.Fatal("garbage accepted as a certificate")
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pkcs8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	backup := []byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  data:\n    tls.key: " + base64.StdEncoding.EncodeToString(pkcs1) + "\n")
	for name, data := range map[string][]byte{"pkcs1": pkcs1, "pkcs8": pkcs8, "backup list": backup} {
		got, err := ParsePrivateKeys(data)
		if err != nil || len(got) != 1 || !got[0].Equal(k) {
			t.Errorf("%s: %v, %v", name, got, err)
		}
	}
	if _, err := ParsePrivateKeys([]byte("-----BEGIN RSA PRIVATE KEY-----\nQ0FOQVJZ\n-----END RSA PRIVATE KEY-----\n")); err == nil || strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("malformed key: err = %v", err)
	}
}

func selfSigned(t testing.TB, k *rsa.PrivateKey, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealed-secret"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestVector pins the wire format: with the global random source seeded, sealing a fixed
// value with a fixed key gives the bytes in testdata/hybrid.txt, and they decrypt back.
func TestVector(t *testing.T) {
	data, err := os.ReadFile("testdata/hybrid.txt")
	if err != nil && !*update {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			fields[k] = v
		}
	}
	var key *rsa.PrivateKey
	if *update {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		der, _ := base64.StdEncoding.DecodeString(fields["key"])
		if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
			t.Fatal(err)
		}
	}
	var ct []byte
	t.Run("seeded", func(t *testing.T) {
		cryptotest.SetGlobalRandom(t, 42)
		if ct, err = HybridEncrypt(rand.Reader, &key.PublicKey, []byte("hunter2"), []byte("shop/db")); err != nil {
			t.Fatal(err)
		}
	})
	got := base64.StdEncoding.EncodeToString(ct)
	if *update {
		out := "expect: HybridEncrypt(seeded global random 42, key, \"hunter2\", label \"shop/db\")\n" +
			"key: " + base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PrivateKey(key)) + "\n" +
			"ciphertext: " + got + "\n"
		if err := os.WriteFile("testdata/hybrid.txt", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != fields["ciphertext"] {
		t.Fatalf("ciphertext changed; the wire format must not:\n got %s\nwant %s", got, fields["ciphertext"])
	}
	plain, err := HybridDecrypt(rand.Reader, key, ct, []byte("shop/db"))
	if err != nil || !bytes.Equal(plain, []byte("hunter2")) {
		t.Fatalf("decrypt = %q, %v", plain, err)
	}
}

// FuzzHybridDecrypt: arbitrary ciphertexts never panic and never decrypt.
func FuzzHybridDecrypt(f *testing.F) {
	k := keys(f, 1)[0]
	ct, _ := HybridEncrypt(rand.Reader, &k.PublicKey, []byte("v"), nil)
	f.Add(ct)
	f.Add([]byte{0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Equal(data, ct) {
			return
		}
		if _, err := HybridDecrypt(rand.Reader, k, data, nil); err == nil {
			t.Fatal("random bytes decrypted")
		}
	})
}

// BenchmarkUnseal: a SealedSecret of 5 keys against a ring of 10 RSA-4096 keys, sealed with
// the last one, with and without keyway's sealing-key hint.
func BenchmarkUnseal(b *testing.B) {
	var ring []*rsa.PrivateKey
	for range 10 {
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			b.Fatal(err)
		}
		ring = append(ring, k)
	}
	s := secret()
	s.StringData = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	ss, err := Seal(rand.Reader, &ring[9].PublicKey, s, SealOptions{})
	if err != nil {
		b.Fatal(err)
	}
	noHint := *ss
	noHint.Metadata.Annotations = map[string]string{}
	for name, in := range map[string]*SealedSecret{"hint": ss, "no-hint": &noHint} {
		b.Run(name, func(b *testing.B) {
			tries := 0
			for b.Loop() {
				_, n, err := Unseal(b.Context(), rand.Reader, in, ring)
				if err != nil {
					b.Fatal(err)
				}
				tries += n
			}
			b.ReportMetric(float64(tries)/float64(b.N)/5, "rsa-decryptions/value")
		})
	}
}

// BenchmarkUnsealFloor is the least time any unsealer needs on this machine for the first
// pass over 1,000 SealedSecrets of 5 keys each sealed for an RSA-4096 key: 5,000 RSA
// decryptions and nothing else — no API server, no JSON — spread over every core
// (GOMAXPROCS workers). Compare BenchmarkUnsealAtScale/1000's s-to-all-unsealed with
// s-per-1000x5 here.
func BenchmarkUnsealFloor(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		b.Fatal(err)
	}
	s := secret()
	s.StringData = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"} // with "password": 5 keys
	ss, err := Seal(rand.Reader, &k.PublicKey, s, SealOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ring := []*rsa.PrivateKey{k}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := Unseal(b.Context(), rand.Reader, ss, ring); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1000, "s-per-1000x5")
}
