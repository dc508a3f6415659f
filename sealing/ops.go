package sealing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
)

// ItemError is a failure of one item of a batch: Item indexes the input.
type ItemError struct {
	Item int
	Err  error
}

func (e *ItemError) Error() string { return fmt.Sprintf("item %d: %v", e.Item, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }

// SealAll seals every Secret for every public key: the result holds, for each Secret in
// input order, one SealedSecret per key in key order. RSA encryption is the cost, so the
// Secrets × keys pairs are spread over the cores. The first failure in input order is
// returned as an *ItemError naming the Secret.
func SealAll(secrets []*corev1.Secret, pubs []*rsa.PublicKey, o SealOptions) ([]*SealedSecret, error) {
	if len(pubs) == 0 {
		return nil, errors.New("no certificate to seal for")
	}
	pairs := make([]int, len(secrets)*len(pubs))
	for j := range pairs {
		pairs[j] = j
	}
	return parallel.Map(pairs, func(_ int, j int) (*SealedSecret, error) {
		i := j / len(pubs)
		ss, err := Seal(rand.Reader, pubs[j%len(pubs)], secrets[i], o)
		if err != nil {
			return nil, &ItemError{Item: i, Err: err}
		}
		return ss, nil
	})
}

// ReEncrypt opens a SealedSecret with keys and seals its values again for each public key
// (Reseal per key): what a cluster's key rotation or a move to another cluster needs,
// without the cluster.
func ReEncrypt(ss *SealedSecret, keys []*rsa.PrivateKey, pubs []*rsa.PublicKey) ([]*SealedSecret, error) {
	out := make([]*SealedSecret, 0, len(pubs))
	for _, pub := range pubs {
		re, err := Reseal(rand.Reader, ss, keys, pub)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// MergeFile adds add's encrypted values to the SealedSecret file data (JSON or YAML) and
// returns the file in its own format. Both must name the same Secret.
func MergeFile(data []byte, add *SealedSecret) ([]byte, error) {
	var existing SealedSecret
	if err := yaml.Unmarshal(data, &existing); err != nil || existing.Kind != Kind {
		return nil, errors.New("not a SealedSecret")
	}
	if existing.Metadata.Name != add.Metadata.Name || existing.Metadata.Namespace != add.Metadata.Namespace {
		return nil, fmt.Errorf("it is %s/%s, the Secret is %s/%s", existing.Metadata.Namespace, existing.Metadata.Name, add.Metadata.Namespace, add.Metadata.Name)
	}
	if existing.Spec.EncryptedData == nil {
		existing.Spec.EncryptedData = map[string]string{}
	}
	maps.Copy(existing.Spec.EncryptedData, add.Spec.EncryptedData)
	format := "yaml"
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		format = "json"
	}
	return Encode([]any{&existing}, format)
}

// Encode writes objects as a JSON stream (kubeseal's default) or YAML documents.
func Encode(objs []any, format string) ([]byte, error) {
	var b bytes.Buffer
	for i, obj := range objs {
		if format == "yaml" {
			if i > 0 {
				b.WriteString("---\n")
			}
			y, err := yaml.Marshal(obj)
			if err != nil {
				return nil, err
			}
			b.Write(y)
			continue
		}
		j, err := json.MarshalIndent(obj, "", "  ")
		if err != nil {
			return nil, err
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// SealRendered replaces every rendered v1 Secret that received secret values (a modified
// document) with a SealedSecret for pub, so what leaves a render — Argo CD's manifest cache
// and UI included — holds only ciphertext. Secrets without a namespace get namespace.
func SealRendered(docs []*manifest.Document, pub *rsa.PublicKey, namespace string) error {
	for _, d := range docs {
		if !d.Modified() || manifest.String(d.Root, "kind") != "Secret" || manifest.String(d.Root, "apiVersion") != "v1" {
			continue
		}
		var s corev1.Secret
		if err := manifest.Decode(d, &s); err != nil {
			return err
		}
		if s.Namespace == "" {
			s.Namespace = namespace
		}
		ss, err := Seal(rand.Reader, pub, &s, SealOptions{AllowEmptyData: true})
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
		}
		n, err := manifest.FromObject(ss)
		if err != nil {
			return err
		}
		d.Replace(n)
	}
	return nil
}

// ErrInsecureCertURL: a certificate URL that is not https. Anyone on the path could hand
// over a certificate of their own, and every secret sealed to it would be theirs.
var ErrInsecureCertURL = errors.New("a certificate URL must be https (or give a file)")

// LoadCert reads a sealing certificate from a file or an https URL and returns its key,
// refusing expired certificates and weak keys.
func LoadCert(ctx context.Context, ref string) (*rsa.PublicKey, error) {
	var data []byte
	var err error
	switch {
	case strings.HasPrefix(ref, "https://"):
		data, err = fetch(ctx, ref)
	case strings.Contains(ref, "://"):
		return nil, ErrInsecureCertURL
	default:
		data, err = os.ReadFile(ref)
	}
	if err != nil {
		return nil, err
	}
	return ParseCert(data, time.Now())
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
