package sealedsecrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyway-dev/keyway/sealing"
)

// AnnotationUnsealedFrom on a Secret the unsealer wrote proves, to the unsealer only, that
// the Secret holds exactly what its SealedSecret's current generation unseals to: an HMAC,
// keyed from a sealing key, over the SealedSecret's identity, generation and annotations and
// over the Secret's content. A controller that starts — a restart, a new leader — checks it
// instead of decrypting, so it spends no RSA work on Secrets that are as they were written;
// any edit of the Secret or the SealedSecret breaks it and the Secret is unsealed again. It
// reveals nothing of the values (the key never leaves the controller).
const AnnotationUnsealedFrom = "keyway.dev/unsealed-from"

const proofVersion = "v2" // v1 MACed the content itself: a v1 proof is not checked, its Secret is unsealed once more

// proofKey derives the MAC key from a sealing key; it is fixed for the key's life, so every
// replica holding the ring derives the same.
func proofKey(k *sealing.Key) []byte {
	if key, ok := proofKeys.Load(k.Private); ok {
		return key.([]byte)
	}
	key, err := hkdf.Key(sha256.New, k.Private.D.Bytes(), nil, "keyway unsealed-from "+proofVersion, 32)
	if err != nil {
		panic(err) // only for an output length HKDF cannot make
	}
	proofKeys.Store(k.Private, key)
	return key
}

// proofKeys caches derived MAC keys by private key (the ring parses each key once).
var proofKeys sync.Map

// contentDigest sums everything of a Secret the proof covers — type, immutability, labels,
// annotations (the proof's own aside), owners and data — so the cache can keep this in place
// of the values and still check a proof.
func contentDigest(s *corev1.Secret) [sha256.Size]byte {
	h := sha256.New()
	field(h, string(s.Type))
	if s.Immutable != nil && *s.Immutable {
		field(h, "immutable")
	} else {
		field(h, "")
	}
	stringMap(h, s.Labels, "")
	stringMap(h, s.Annotations, AnnotationUnsealedFrom)
	for _, ref := range s.OwnerReferences {
		field(h, string(ref.UID))
	}
	field(h, "data")
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		field(h, k)
		field(h, string(s.Data[k]))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// proof is the annotation's value for a SealedSecret with the given settledMark and a Secret
// content with the given digest, made with the sealing key k.
func proof(k *sealing.Key, mark string, digest [sha256.Size]byte) string {
	m := hmac.New(sha256.New, proofKey(k))
	field(m, mark)
	m.Write(digest[:])
	return proofVersion + ":" + k.Name + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// prove sets s's proof annotation for its content as it stands and the SealedSecret with
// this settledMark, with the newest key of the ring. Without a key (a SealedSecret with no sealed values can be unsealed before the ring
// exists) the Secret goes without a proof: a restart then checks it the long way.
func prove(ring []*sealing.Key, mark string, s *corev1.Secret) {
	if len(ring) == 0 {
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationUnsealedFrom] = proof(ring[0], mark, contentDigest(s))
}

// verifyProof reports whether got is a proof, made with a key of the ring, that a Secret
// whose content has this digest is what the SealedSecret with this settledMark unseals to.
func verifyProof(ring []*sealing.Key, mark, got string, digest [sha256.Size]byte) bool {
	parts := strings.SplitN(got, ":", 3)
	if len(parts) != 3 || parts[0] != proofVersion {
		return false
	}
	for _, k := range ring {
		if k.Name == parts[1] {
			return hmac.Equal([]byte(proof(k, mark, digest)), []byte(got))
		}
	}
	return false
}

// field writes a length-prefixed string, so no two contents hash alike.
func field(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

func stringMap(h hash.Hash, m map[string]string, skip string) {
	keys := slices.Sorted(maps.Keys(m))
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == skip })
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(keys)))
	h.Write(n[:])
	for _, k := range keys {
		field(h, k)
		field(h, m[k])
	}
}
