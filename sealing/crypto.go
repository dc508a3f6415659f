package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// sessionKeyBytes is the AES-256 key size used per value.
const sessionKeyBytes = 32

// ErrDecrypt means no key could open a value. It never says why in more detail: the details
// (wrong key, wrong scope, tampering) are indistinguishable on purpose.
var ErrDecrypt = errors.New("cannot decrypt: no key opens it, its scope does not match, or it was altered")

// HybridEncrypt seals plaintext for pub with label bound in (the scope). Byte layout:
//
//	uint16 big-endian n | RSA-OAEP-SHA256(pub, sessionKey, label) (n bytes) | AES-256-GCM(sessionKey, nonce=0¹²) of plaintext
//
// A fresh 32-byte session key per value makes the all-zero nonce safe.
func HybridEncrypt(rnd io.Reader, pub *rsa.PublicKey, plaintext, label []byte) ([]byte, error) {
	sessionKey := make([]byte, sessionKeyBytes)
	if _, err := io.ReadFull(rnd, sessionKey); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	block, err := aes.NewCipher(sessionKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rnd, pub, sessionKey, label)
	if err != nil {
		return nil, fmt.Errorf("wrap session key: %w", err)
	}
	out := make([]byte, 2, 2+len(wrapped)+len(plaintext)+aead.Overhead())
	binary.BigEndian.PutUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	return aead.Seal(out, make([]byte, aead.NonceSize()), plaintext, nil), nil
}

// HybridDecrypt opens a value sealed by HybridEncrypt with priv and the same label.
func HybridDecrypt(rnd io.Reader, priv *rsa.PrivateKey, ciphertext, label []byte) ([]byte, error) {
	if len(ciphertext) < 2 {
		return nil, ErrDecrypt
	}
	n := int(binary.BigEndian.Uint16(ciphertext))
	if len(ciphertext) < 2+n {
		return nil, ErrDecrypt
	}
	sessionKey, err := rsa.DecryptOAEP(sha256.New(), rnd, priv, ciphertext[2:2+n], label)
	if err != nil || len(sessionKey) != sessionKeyBytes {
		return nil, ErrDecrypt
	}
	block, err := aes.NewCipher(sessionKey)
	if err != nil {
		return nil, ErrDecrypt
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, ErrDecrypt
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), ciphertext[2+n:], nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// Scope is how widely a sealed value may be used.
type Scope int

const (
	// Strict binds a value to one Secret name in one namespace (label "namespace/name").
	Strict Scope = iota
	// NamespaceWide lets any Secret name in the namespace use it (label "namespace").
	NamespaceWide
	// ClusterWide lets any name in any namespace use it (empty label).
	ClusterWide
)

// ParseScope accepts kubeseal's names.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "", "strict":
		return Strict, nil
	case "namespace-wide":
		return NamespaceWide, nil
	case "cluster-wide":
		return ClusterWide, nil
	}
	return 0, fmt.Errorf("scope %q: want strict, namespace-wide or cluster-wide", s)
}

func (s Scope) String() string {
	return [...]string{"strict", "namespace-wide", "cluster-wide"}[s]
}

// Label is the OAEP label that binds a value to its scope.
func Label(scope Scope, namespace, name string) []byte {
	switch scope {
	case NamespaceWide:
		return []byte(namespace)
	case ClusterWide:
		return nil
	}
	return []byte(namespace + "/" + name)
}
