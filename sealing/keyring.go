package sealing

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// Key ring storage, the same shape upstream uses so key backups move either way.
const (
	KeyLabel       = "sealedsecrets.bitnami.com/sealed-secrets-key"
	KeyLabelActive = "active"
	KeyNamePrefix  = "sealed-secrets-key"
	// KeyBits is the size of keys keyway generates, as upstream.
	KeyBits = 4096
	// CertValidity is how long a sealing certificate is valid, as upstream.
	CertValidity = 10 * 365 * 24 * time.Hour
)

// Key is one key of the ring.
type Key struct {
	Name    string
	Private *rsa.PrivateKey
	CertPEM []byte
	Created time.Time
}

// GenerateKey makes an RSA key and a self-signed certificate for it (CN sealed-secret).
func GenerateKey(rnd io.Reader, bits int, now time.Time) (*rsa.PrivateKey, []byte, error) {
	priv, err := rsa.GenerateKey(rnd, bits)
	if err != nil {
		return nil, nil, err
	}
	cert, err := selfSignedCert(rnd, priv, now)
	if err != nil {
		return nil, nil, err
	}
	return priv, cert, nil
}

// selfSignedCert makes the sealing certificate for priv (CN sealed-secret), valid for
// CertValidity from now.
func selfSignedCert(rnd io.Reader, priv *rsa.PrivateKey, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "sealed-secret", Organization: []string{"keyway"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CertValidity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// keySecret is the kubernetes.io/tls Secret that stores a key.
func keySecret(namespace string, priv *rsa.PrivateKey, certPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: KeyNamePrefix,
			Namespace:    namespace,
			Labels:       map[string]string{KeyLabel: KeyLabelActive},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}),
			corev1.TLSCertKey:       certPEM,
		},
	}
}

// Ring reads and writes the key ring in a namespace.
type Ring struct {
	Client    kubernetes.Interface
	Namespace string
}

// Generate adds a new active key and returns it.
func (r Ring) Generate(ctx context.Context, bits int) (*Key, error) {
	priv, cert, err := GenerateKey(rand.Reader, bits, time.Now())
	if err != nil {
		return nil, err
	}
	s, err := r.Client.CoreV1().Secrets(r.Namespace).Create(ctx, keySecret(r.Namespace, priv, cert), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("store key in %s: %w", r.Namespace, err)
	}
	return &Key{Name: s.Name, Private: priv, CertPEM: cert, Created: s.CreationTimestamp.Time}, nil
}

// Keys lists the ring, newest first (the newest is the one that seals).
func (r Ring) Keys(ctx context.Context) ([]*Key, error) {
	list, err := r.Client.CoreV1().Secrets(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: KeyLabel})
	if err != nil {
		return nil, fmt.Errorf("list keys in %s: %w", r.Namespace, err)
	}
	return KeysFromSecrets(list.Items)
}

// KeysFromSecrets parses key Secrets, newest first; unparsable ones are an error naming them.
func KeysFromSecrets(items []corev1.Secret) ([]*Key, error) {
	var keys []*Key
	for _, s := range items {
		if s.Labels[KeyLabel] == "" {
			continue
		}
		ks, err := ParsePrivateKeys(s.Data[corev1.TLSPrivateKeyKey])
		if err != nil || len(ks) != 1 {
			return nil, fmt.Errorf("key Secret %s/%s: no usable tls.key", s.Namespace, s.Name)
		}
		keys = append(keys, &Key{Name: s.Name, Private: ks[0], CertPEM: s.Data[corev1.TLSCertKey], Created: s.CreationTimestamp.Time})
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].Created.Equal(keys[j].Created) {
			return keys[i].Name > keys[j].Name
		}
		return keys[i].Created.After(keys[j].Created)
	})
	return keys, nil
}

// Import stores key Secrets from a backup (a Secret or a List), skipping keys already in
// the ring. It returns how many were added.
func (r Ring) Import(ctx context.Context, backup []*rsa.PrivateKey, certs [][]byte) (int, error) {
	have, err := r.Keys(ctx)
	if err != nil {
		return 0, err
	}
	added := 0
	for i, k := range backup {
		dup := false
		for _, h := range have {
			dup = dup || h.Private.Equal(k)
		}
		if dup {
			continue
		}
		cert := certs[i]
		if len(cert) == 0 {
			if cert, err = selfSignedCert(rand.Reader, k, time.Now()); err != nil {
				return added, err
			}
		}
		if _, err := r.Client.CoreV1().Secrets(r.Namespace).Create(ctx, keySecret(r.Namespace, k, cert), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return added, fmt.Errorf("import key: %w", err)
		}
		added++
	}
	return added, nil
}

// Export returns every key Secret of the ring as a v1 List, stripped of what belongs to
// this cluster (resourceVersion, UID, managed fields): a backup that Import, or upstream,
// reads back. Handle it as a secret.
func (r Ring) Export(ctx context.Context) (*corev1.List, error) {
	l, err := r.Client.CoreV1().Secrets(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: KeyLabel})
	if err != nil {
		return nil, fmt.Errorf("list keys in %s: %w", r.Namespace, err)
	}
	out := &corev1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, s := range l.Items {
		s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
		s.ManagedFields, s.ResourceVersion, s.UID = nil, "", ""
		raw, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, runtime.RawExtension{Raw: raw})
	}
	return out, nil
}
