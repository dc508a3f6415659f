package sealing

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations shared with upstream Sealed Secrets, and keyway's own.
const (
	AnnotationNamespaceWide = "sealedsecrets.bitnami.com/namespace-wide"
	AnnotationClusterWide   = "sealedsecrets.bitnami.com/cluster-wide"
	AnnotationManaged       = "sealedsecrets.bitnami.com/managed"
	// AnnotationSkipOwnerReferences on the template keeps the template's own
	// ownerReferences instead of pointing the Secret at its SealedSecret.
	AnnotationSkipOwnerReferences = "sealedsecrets.bitnami.com/skip-set-owner-references"
	// AnnotationSealingKey records the fingerprint of the key a SealedSecret was sealed
	// with, so the unsealer tries that key first.
	AnnotationSealingKey = "keyway.dev/sealing-key"

	APIVersion = "bitnami.com/v1alpha1"
	Kind       = "SealedSecret"
)

// SealedSecret is bitnami.com/v1alpha1 SealedSecret, field for field.
type SealedSecret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       Spec              `json:"spec"`
}

// Spec is a SealedSecret's spec.
type Spec struct {
	Template      Template          `json:"template,omitempty"`
	EncryptedData map[string]string `json:"encryptedData"`
}

// Template is what the unsealed Secret looks like apart from its data.
type Template struct {
	Metadata  metav1.ObjectMeta `json:"metadata,omitempty"`
	Type      corev1.SecretType `json:"type,omitempty"`
	Immutable *bool             `json:"immutable,omitempty"`
	// Data holds Go text/template entries rendered over the unsealed values
	// (`{{ index . "password" }}`), as upstream does; a null entry removes the key.
	Data map[string]*string `json:"data,omitempty"`
}

// scopeOf reads a SealedSecret's (or Secret's) scope from its annotations.
func scopeOf(ann map[string]string) Scope {
	if b, _ := strconv.ParseBool(ann[AnnotationClusterWide]); b {
		return ClusterWide
	}
	if b, _ := strconv.ParseBool(ann[AnnotationNamespaceWide]); b {
		return NamespaceWide
	}
	return Strict
}

// SealOptions control Seal.
type SealOptions struct {
	Scope          Scope
	ScopeSet       bool // Scope was chosen explicitly; otherwise the Secret's annotations decide
	AllowEmptyData bool
}

// Seal encrypts every value of s (data and stringData, stringData winning) for pub. The
// Secret must name its namespace, and its name unless the scope is cluster-wide.
func Seal(rnd io.Reader, pub *rsa.PublicKey, s *corev1.Secret, o SealOptions) (*SealedSecret, error) {
	scope := o.Scope
	if !o.ScopeSet {
		scope = scopeOf(s.Annotations)
	}
	if s.Name == "" && scope != ClusterWide {
		return nil, errors.New("the Secret has no metadata.name (needed unless --scope cluster-wide)")
	}
	if s.Namespace == "" && scope != ClusterWide {
		return nil, fmt.Errorf("secret %q has no metadata.namespace: set it or pass --namespace", s.Name)
	}
	values := map[string][]byte{}
	maps.Copy(values, s.Data)
	for k, v := range s.StringData {
		values[k] = []byte(v)
	}
	if len(values) == 0 && !o.AllowEmptyData {
		return nil, fmt.Errorf("secret %q has no data (pass --allow-empty-data to seal it anyway)", s.Name)
	}
	label := Label(scope, s.Namespace, s.Name)
	ss := &SealedSecret{APIVersion: APIVersion, Kind: Kind, Spec: Spec{EncryptedData: map[string]string{}}}
	ss.Metadata.Name, ss.Metadata.Namespace = s.Name, s.Namespace
	ss.Metadata.Annotations = map[string]string{AnnotationSealingKey: Fingerprint(pub)}
	switch scope {
	case NamespaceWide:
		ss.Metadata.Annotations[AnnotationNamespaceWide] = "true"
	case ClusterWide:
		ss.Metadata.Annotations[AnnotationClusterWide] = "true"
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		ct, err := HybridEncrypt(rnd, pub, values[k], label)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		ss.Spec.EncryptedData[k] = base64.StdEncoding.EncodeToString(ct)
	}
	tm := &ss.Spec.Template.Metadata
	tm.Name, tm.Namespace = s.Name, s.Namespace
	tm.Labels = maps.Clone(s.Labels)
	tm.Annotations = maps.Clone(s.Annotations)
	for _, a := range []string{AnnotationNamespaceWide, AnnotationClusterWide, corev1.LastAppliedConfigAnnotation} {
		delete(tm.Annotations, a)
	}
	if len(tm.Annotations) == 0 {
		tm.Annotations = nil
	}
	ss.Spec.Template.Type = s.Type
	if ss.Spec.Template.Type == "" {
		ss.Spec.Template.Type = corev1.SecretTypeOpaque
	}
	ss.Spec.Template.Immutable = s.Immutable
	return ss, nil
}

// Unseal decrypts every value with the first key that opens them, trying the key named by
// the sealing-key annotation first, then renders spec.template.data over the values on a
// template budget that ctx also ends. It returns the Secret the controller would create and
// how many RSA decryptions it spent.
//
// The Secret is controlled by the SealedSecret when that has a UID (it came from a cluster)
// unless the template asks to skip that; the template's own ownerReferences are kept only
// then, as upstream does.
func Unseal(ctx context.Context, rnd io.Reader, ss *SealedSecret, keys []*rsa.PrivateKey) (*corev1.Secret, int, error) {
	values, tries, err := open(rnd, ss, keys)
	if err != nil {
		return nil, tries, err
	}
	s := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, Data: values}
	s.ObjectMeta = *ss.Spec.Template.Metadata.DeepCopy()
	s.Name, s.Namespace = ss.Metadata.Name, ss.Metadata.Namespace
	s.Type = ss.Spec.Template.Type
	s.Immutable = ss.Spec.Template.Immutable
	if s.Annotations[AnnotationSkipOwnerReferences] != "true" {
		s.OwnerReferences = nil
		if ss.Metadata.UID != "" {
			yes := true
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: APIVersion, Kind: Kind, Name: ss.Metadata.Name, UID: ss.Metadata.UID, Controller: &yes, BlockOwnerDeletion: &yes}}
		}
	}
	if err := renderTemplateData(ctx, ss.Spec.Template.Data, s.Data); err != nil {
		return nil, tries, fmt.Errorf("SealedSecret %s/%s: %w", ss.Metadata.Namespace, ss.Metadata.Name, err)
	}
	return s, tries, nil
}

// Check tells whether every value of ss opens with keys under its name, namespace and
// scope, and how many RSA decryptions that took. It never renders the template, so its
// answer depends on the ciphertexts alone, not on what they hold.
func Check(rnd io.Reader, ss *SealedSecret, keys []*rsa.PrivateKey) (int, error) {
	_, tries, err := open(rnd, ss, keys)
	return tries, err
}

// open decrypts every encryptedData value, returning them and the RSA decryptions spent.
func open(rnd io.Reader, ss *SealedSecret, keys []*rsa.PrivateKey) (map[string][]byte, int, error) {
	if ss.Kind != Kind {
		return nil, 0, fmt.Errorf("%s %q is not a SealedSecret", ss.Kind, ss.Metadata.Name)
	}
	scope := scopeOf(ss.Metadata.Annotations)
	label := Label(scope, ss.Metadata.Namespace, ss.Metadata.Name)
	order := slices.Clone(keys)
	if fp := ss.Metadata.Annotations[AnnotationSealingKey]; fp != "" {
		slices.SortStableFunc(order, func(a, b *rsa.PrivateKey) int {
			ah, bh := Fingerprint(&a.PublicKey) == fp, Fingerprint(&b.PublicKey) == fp
			switch {
			case ah && !bh:
				return -1
			case bh && !ah:
				return 1
			}
			return 0
		})
	}
	values := make(map[string][]byte, len(ss.Spec.EncryptedData))
	tries := 0
	for _, k := range slices.Sorted(maps.Keys(ss.Spec.EncryptedData)) {
		ct, err := base64.StdEncoding.DecodeString(ss.Spec.EncryptedData[k])
		if err != nil {
			return nil, tries, fmt.Errorf("encryptedData %q is not base64", k)
		}
		var plain []byte
		for i, key := range order {
			tries++
			if plain, err = HybridDecrypt(rnd, key, ct, label); err == nil {
				// Later values were most likely sealed with the same key.
				if i > 0 {
					order[0], order[i] = order[i], order[0]
				}
				break
			}
		}
		if err != nil {
			return nil, tries, fmt.Errorf("SealedSecret %s/%s key %q (scope %s): %w", ss.Metadata.Namespace, ss.Metadata.Name, k, scope, ErrDecrypt)
		}
		values[k] = plain
	}
	return values, tries, nil
}

// Reseal opens a SealedSecret with keys and encrypts its values again for pub, with the
// same scope; everything else (the template, labels, annotations) is kept as written.
func Reseal(rnd io.Reader, ss *SealedSecret, keys []*rsa.PrivateKey, pub *rsa.PublicKey) (*SealedSecret, error) {
	values, _, err := open(rnd, ss, keys)
	if err != nil {
		return nil, err
	}
	label := Label(scopeOf(ss.Metadata.Annotations), ss.Metadata.Namespace, ss.Metadata.Name)
	out := &SealedSecret{APIVersion: APIVersion, Kind: Kind, Metadata: *ss.Metadata.DeepCopy(), Spec: Spec{EncryptedData: make(map[string]string, len(values))}}
	out.Metadata.ResourceVersion, out.Metadata.UID, out.Metadata.ManagedFields, out.Metadata.Generation = "", "", nil, 0
	out.Metadata.CreationTimestamp = metav1.Time{}
	out.Spec.Template = Template{Metadata: *ss.Spec.Template.Metadata.DeepCopy(), Type: ss.Spec.Template.Type, Immutable: ss.Spec.Template.Immutable, Data: maps.Clone(ss.Spec.Template.Data)}
	if out.Metadata.Annotations == nil {
		out.Metadata.Annotations = map[string]string{}
	}
	out.Metadata.Annotations[AnnotationSealingKey] = Fingerprint(pub)
	for _, k := range slices.Sorted(maps.Keys(values)) {
		ct, err := HybridEncrypt(rnd, pub, values[k], label)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		out.Spec.EncryptedData[k] = base64.StdEncoding.EncodeToString(ct)
	}
	return out, nil
}
