package sealing

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// minKeyBits is the smallest RSA key keyway seals to: a 1024-bit key is within reach of
// factoring, and what is sealed to it sits in git for years.
const minKeyBits = 2048

// ParseCert reads the first PEM certificate in data and returns its RSA public key. An
// expired certificate, a non-RSA key, a key under minKeyBits or anything that is not a
// certificate is an error; now is passed in so tests can pin time.
func ParseCert(data []byte, now time.Time) (*rsa.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed certificate: %v", err)
		}
		if now.After(cert.NotAfter) {
			return nil, fmt.Errorf("certificate expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("certificate holds a %T key; Sealed Secrets needs RSA", cert.PublicKey)
		}
		if bits := pub.N.BitLen(); bits < minKeyBits {
			return nil, fmt.Errorf("certificate holds a %d-bit RSA key; sealing needs at least %d bits", bits, minKeyBits)
		}
		return pub, nil
	}
}

// ParsePrivateKeys reads RSA private keys from PEM (PKCS#1 or PKCS#8) or from a key backup:
// a kubernetes.io/tls Secret, or a List of them, as the sealed-secrets controller stores its
// keys. Errors never include key material.
func ParsePrivateKeys(data []byte) ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("malformed RSA private key")
			}
			keys = append(keys, k)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("malformed PKCS#8 private key")
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T; Sealed Secrets needs RSA", k)
			}
			keys = append(keys, rk)
		}
	}
	if len(keys) > 0 {
		return keys, nil
	}
	// A Secret or a List of Secrets holding tls.key.
	var obj struct {
		Kind  string            `json:"kind"`
		Data  map[string][]byte `json:"data"`
		Items []corev1.Secret   `json:"items"`
	}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, errors.New("no PEM private key, Secret or List of Secrets found")
	}
	var pems [][]byte
	switch obj.Kind {
	case "Secret":
		pems = append(pems, obj.Data[corev1.TLSPrivateKeyKey])
	case "List", "SecretList":
		for _, s := range obj.Items {
			pems = append(pems, s.Data[corev1.TLSPrivateKeyKey])
		}
	default:
		return nil, errors.New("no PEM private key, Secret or List of Secrets found")
	}
	for _, p := range pems {
		if len(p) == 0 {
			continue
		}
		ks, err := ParsePrivateKeys(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return nil, errors.New("the Secret backup holds no tls.key")
	}
	return keys, nil
}

// Fingerprint names a public key: the first 16 hex digits of SHA-256 over its PKIX DER.
func Fingerprint(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}
