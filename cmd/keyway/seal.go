package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	goyaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sealing"
)

type sealOptions struct {
	Certs          []string
	Scope          string
	Raw            bool
	Name           string
	Namespace      string
	FromFile       string
	Output         string
	File           string
	Write          string
	MergeInto      string
	ReEncrypt      bool
	Validate       bool
	RecoveryUnseal bool
	PrivateKeys    []string
	AllowEmptyData bool
	AgeRecipients  []string
	AgeIdentities  []string
	FetchCert      bool
	ControllerName string
	ControllerNS   string
	Kube           kubeFlags
}

func (o *sealOptions) BindFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.Certs, "cert", nil, "certificate (PEM file or https URL) of a cluster's sealing key; repeat to seal for several clusters at once")
	fs.StringVar(&o.Scope, "scope", "", "strict (name and namespace), namespace-wide or cluster-wide; default: the Secret's sealedsecrets.bitnami.com annotations, else strict")
	fs.BoolVar(&o.Raw, "raw", false, "encrypt one raw value (from --from-file or stdin) and print it base64-encoded")
	fs.StringVar(&o.Name, "name", "", "Secret name for --raw (strict scope)")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "namespace for --raw, and for Secrets that name none")
	fs.StringVar(&o.FromFile, "from-file", "", "the raw value for --raw")
	fs.StringVarP(&o.Output, "format", "o", "json", "output format: json or yaml")
	fs.StringVarP(&o.File, "secret-file", "f", "", "read from this file instead of stdin")
	fs.StringVarP(&o.Write, "sealed-secret-file", "w", "", "write to this file (atomically, only on success) instead of stdout")
	fs.StringVar(&o.MergeInto, "merge-into", "", "seal and merge the values into this existing SealedSecret file, keeping its format")
	fs.BoolVar(&o.ReEncrypt, "re-encrypt", false, "re-encrypt SealedSecrets to --cert, offline, opening them with --recovery-private-key")
	fs.BoolVar(&o.Validate, "validate", false, "check that SealedSecrets open with --recovery-private-key, offline")
	fs.BoolVar(&o.RecoveryUnseal, "recovery-unseal", false, "decrypt SealedSecrets with --recovery-private-key and print the Secrets (disaster recovery)")
	fs.StringSliceVar(&o.PrivateKeys, "recovery-private-key", nil, "private key file(s): PEM PKCS#1/PKCS#8, or a Secret/List key backup")
	fs.BoolVar(&o.AllowEmptyData, "allow-empty-data", false, "seal a Secret without data")
	fs.StringSliceVar(&o.AgeRecipients, "age-recipient", nil, "age-seal a YAML/JSON secrets file value by value for these recipients (age1…; repeatable) instead of making SealedSecrets")
	fs.StringSliceVar(&o.AgeIdentities, "age-identity", nil, "age identity file(s) that open the existing -w file, so unchanged values keep their ciphertext")
	fs.BoolVar(&o.FetchCert, "fetch-cert", false, "print the controller's sealing certificate (through the API server's service proxy) and exit")
	fs.StringVar(&o.ControllerName, "controller-name", "sealed-secrets-controller", "Service name of the unsealer, used when no --cert is given and for online --validate/--re-encrypt")
	fs.StringVar(&o.ControllerNS, "controller-namespace", "kube-system", "namespace of the unsealer's Service")
	fs.StringVar(&o.Kube.Kubeconfig, "kubeconfig", "", "kubeconfig for talking to the controller (default: in-cluster, $KUBECONFIG, ~/.kube/config)")
	fs.StringVar(&o.Kube.Context, "context", "", "kubeconfig context")
}

func newSealCommand(a *app) *cobra.Command {
	var o sealOptions
	cmd := &cobra.Command{
		Use:   "seal",
		Short: "Seal Secrets into SealedSecrets (kubeseal-compatible), offline and for several clusters",
		Long: `seal reads Kubernetes Secrets (YAML or JSON, several documents allowed) and writes
bitnami.com/v1alpha1 SealedSecrets that the sealed-secrets controller (or keyway's unsealer)
turns back into Secrets. The flags are kubeseal's, so scripts port by renaming the binary.

keyway needs no cluster: --cert takes a certificate file or URL, several --cert flags seal
one Secret for several clusters (one output document per cluster), and --re-encrypt works
offline with the private keys. Every SealedSecret keyway writes records its sealing key's
fingerprint (keyway.dev/sealing-key) so the unsealer tries that key first.`,
		Example: `  keyway seal --cert prod.pem < secret.yaml > sealed.json
  keyway seal --cert eu.pem --cert us.pem -o yaml -f secret.yaml -w sealed.yaml
  echo -n s3cret | keyway seal --raw --cert prod.pem --namespace shop --name db
  keyway seal --recovery-unseal --recovery-private-key backup.yaml -f sealed.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSeal(cmd.Context(), a, &o)
		},
	}
	o.BindFlags(cmd.Flags())
	return cmd
}

func runSeal(ctx context.Context, a *app, o *sealOptions) error {
	if o.Output != "json" && o.Output != "yaml" {
		return usagef("--format %q: want json or yaml", o.Output)
	}
	scope, err := sealing.ParseScope(o.Scope)
	if err != nil {
		return usageError{err}
	}
	if len(o.AgeRecipients) > 0 {
		return sealAgeFile(a, o)
	}
	modes := 0
	for _, b := range []bool{o.Raw, o.ReEncrypt, o.Validate, o.RecoveryUnseal, o.MergeInto != ""} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return usagef("--raw, --merge-into, --re-encrypt, --validate and --recovery-unseal exclude each other")
	}
	if o.FetchCert {
		cert, err := o.controller().get(ctx, "/v1/cert.pem")
		if err != nil {
			return err
		}
		return o.emit(a, cert)
	}
	if o.RecoveryUnseal && len(o.PrivateKeys) == 0 {
		return usagef("--recovery-unseal needs --recovery-private-key")
	}
	if (o.Validate || o.ReEncrypt) && len(o.PrivateKeys) == 0 {
		// kubeseal's online form: the controller checks or re-encrypts.
		return o.online(ctx, a)
	}
	var pubs []*rsa.PublicKey
	if !o.Validate && !o.RecoveryUnseal && len(o.Certs) == 0 {
		cert, err := o.controller().get(ctx, "/v1/cert.pem")
		if err != nil {
			return fmt.Errorf("no --cert given and the controller's certificate could not be fetched: %w", err)
		}
		pub, err := sealing.ParseCert(cert, time.Now())
		if err != nil {
			return fmt.Errorf("the controller's certificate: %w", err)
		}
		pubs = append(pubs, pub)
	}
	for _, c := range o.Certs {
		pub, err := loadCert(ctx, c)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	var keys []*rsa.PrivateKey
	for _, p := range o.PrivateKeys {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--recovery-private-key: %w", err)
		}
		ks, err := sealing.ParsePrivateKeys(data)
		if err != nil {
			return fmt.Errorf("--recovery-private-key %s: %w", p, err)
		}
		keys = append(keys, ks...)
	}

	in, source, err := o.input(a)
	if err != nil {
		return err
	}
	if o.Raw {
		return o.sealRaw(a, in, pubs, scope)
	}
	docs, err := manifest.Read(bytes.NewReader(in), source, manifest.Limits{})
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		return fmt.Errorf("%s: no document to seal (empty input)", source)
	}
	var out []any
	switch {
	case o.RecoveryUnseal, o.Validate, o.ReEncrypt:
		for _, d := range docs {
			var ss sealing.SealedSecret
			if err := decodeDoc(d, &ss); err != nil {
				return err
			}
			s, _, err := sealing.Unseal(rand.Reader, &ss, keys)
			if err != nil {
				return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
			}
			switch {
			case o.RecoveryUnseal:
				out = append(out, s)
			case o.ReEncrypt:
				for _, pub := range pubs {
					re, err := sealing.Seal(rand.Reader, pub, s, sealing.SealOptions{Scope: sealing.ScopeOf(ss.Metadata.Annotations), ScopeSet: true, AllowEmptyData: true})
					if err != nil {
						return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
					}
					out = append(out, re)
				}
			}
		}
		if o.Validate {
			fmt.Fprintf(a.err, "keyway: %d SealedSecret(s) valid\n", len(docs))
			return nil
		}
	default:
		secrets := make([]*corev1.Secret, len(docs))
		for i, d := range docs {
			var s corev1.Secret
			if err := decodeDoc(d, &s); err != nil {
				return err
			}
			if s.Kind != "Secret" {
				return fmt.Errorf("%s: document %d: kind %q is not a Secret", d.Source, d.Index, s.Kind)
			}
			switch {
			case s.Namespace == "":
				s.Namespace = o.Namespace
			case o.Namespace != "" && o.Namespace != s.Namespace:
				return fmt.Errorf("%s: document %d: namespace mismatch: the Secret says %q, --namespace says %q", d.Source, d.Index, s.Namespace, o.Namespace)
			}
			secrets[i] = &s
		}
		// RSA encryption is the cost; spread documents × clusters over the cores, keeping
		// the output in input order.
		sealed := make([]any, len(docs)*len(pubs))
		errs := make([]error, len(sealed))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(sealed)) {
			wg.Go(func() {
				for {
					j := int(next.Add(1) - 1)
					if j >= len(sealed) {
						return
					}
					i, p := j/len(pubs), j%len(pubs)
					ss, err := sealing.Seal(rand.Reader, pubs[p], secrets[i], sealing.SealOptions{Scope: scope, ScopeSet: o.Scope != "", AllowEmptyData: o.AllowEmptyData})
					if err != nil {
						errs[j] = fmt.Errorf("%s: document %d: %w", docs[i].Source, docs[i].Index, err)
						continue
					}
					sealed[j] = ss
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		out = sealed
	}
	if o.MergeInto != "" {
		return mergeInto(o.MergeInto, out)
	}
	data, err := encodeAll(out, o.Output)
	if err != nil {
		return err
	}
	return o.emit(a, data)
}

func (o *sealOptions) input(a *app) ([]byte, string, error) {
	if o.Raw && o.FromFile != "" {
		data, err := os.ReadFile(o.FromFile)
		return data, o.FromFile, err
	}
	if o.File != "" {
		data, err := os.ReadFile(o.File)
		return data, o.File, err
	}
	data, err := io.ReadAll(io.LimitReader(a.in, 64<<20))
	return data, "<stdin>", err
}

func (o *sealOptions) sealRaw(a *app, value []byte, pubs []*rsa.PublicKey, scope sealing.Scope) error {
	if scope != sealing.ClusterWide && o.Namespace == "" {
		return usagef("--raw needs --namespace (or --scope cluster-wide)")
	}
	if scope == sealing.Strict && o.Name == "" {
		return usagef("--raw with strict scope needs --name")
	}
	var b bytes.Buffer
	for _, pub := range pubs {
		ct, err := sealing.HybridEncrypt(rand.Reader, pub, value, sealing.Label(scope, o.Namespace, o.Name))
		if err != nil {
			return err
		}
		b.WriteString(base64.StdEncoding.EncodeToString(ct))
		b.WriteByte('\n')
	}
	return o.emit(a, b.Bytes())
}

// emit writes to -w atomically (temp file, then rename) or to stdout.
func (o *sealOptions) emit(a *app, data []byte) error {
	if o.Write == "" {
		_, err := a.out.Write(data)
		return err
	}
	return writeAtomic(o.Write, data)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyway-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func decodeDoc(d *manifest.Document, into any) error {
	v, err := manifest.ToJSON(d.Root)
	if err != nil {
		return fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, into); err != nil {
		// encoding/json errors name types and offsets, not values.
		return fmt.Errorf("%s: document %d: not a valid object: %v", d.Source, d.Index, err)
	}
	return nil
}

func encodeAll(objs []any, format string) ([]byte, error) {
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

// mergeInto adds the new encrypted values to an existing SealedSecret file, keeping its
// format (JSON or YAML).
func mergeInto(path string, sealed []any) error {
	if len(sealed) != 1 {
		return usagef("--merge-into takes exactly one Secret and one --cert")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--merge-into: %w", err)
	}
	var existing sealing.SealedSecret
	if err := yaml.Unmarshal(data, &existing); err != nil || existing.Kind != sealing.Kind {
		return fmt.Errorf("--merge-into %s: not a SealedSecret", path)
	}
	add := sealed[0].(*sealing.SealedSecret)
	if existing.Metadata.Name != add.Metadata.Name || existing.Metadata.Namespace != add.Metadata.Namespace {
		return fmt.Errorf("--merge-into %s: it is %s/%s, the Secret is %s/%s", path, existing.Metadata.Namespace, existing.Metadata.Name, add.Metadata.Namespace, add.Metadata.Name)
	}
	if existing.Spec.EncryptedData == nil {
		existing.Spec.EncryptedData = map[string]string{}
	}
	for k, v := range add.Spec.EncryptedData {
		existing.Spec.EncryptedData[k] = v
	}
	format := "yaml"
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		format = "json"
	}
	out, err := encodeAll([]any{&existing}, format)
	if err != nil {
		return err
	}
	return writeAtomic(path, out)
}

func loadCert(ctx context.Context, ref string) (*rsa.PublicKey, error) {
	var data []byte
	var err error
	switch {
	case strings.HasPrefix(ref, "https://"):
		data, err = fetchCert(ctx, ref)
	case strings.Contains(ref, "://"):
		// Over plain http anyone on the path could hand over a certificate of their own,
		// and every secret sealed to it would be theirs.
		return nil, usagef("--cert %s: a certificate URL must be https (or give a file)", ref)
	default:
		data, err = os.ReadFile(ref)
	}
	if err != nil {
		return nil, fmt.Errorf("--cert %s: %w", ref, err)
	}
	pub, err := sealing.ParseCert(data, time.Now())
	if err != nil {
		return nil, fmt.Errorf("--cert %s: %w", ref, err)
	}
	return pub, nil
}

func fetchCert(ctx context.Context, url string) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
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

// sealRendered replaces every rendered Secret that received secret values with a
// SealedSecret for the certificate's cluster, so what leaves the render (Argo CD's manifest
// cache and UI included) holds only ciphertext.
func sealRendered(ctx context.Context, docs []*manifest.Document, cert, namespace string) error {
	pub, err := loadCert(ctx, cert)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if !d.Modified() || manifest.String(d.Root, "kind") != "Secret" || manifest.String(d.Root, "apiVersion") != "v1" {
			continue
		}
		var s corev1.Secret
		if err := decodeDoc(d, &s); err != nil {
			return err
		}
		if s.Namespace == "" {
			s.Namespace = namespace
		}
		ss, err := sealing.Seal(rand.Reader, pub, &s, sealing.SealOptions{AllowEmptyData: true})
		if err != nil {
			return fmt.Errorf("%s: document %d: --seal-to: %w", d.Source, d.Index, err)
		}
		j, err := json.Marshal(ss)
		if err != nil {
			return err
		}
		var n goyaml.Node
		if err := goyaml.Unmarshal(j, &n); err != nil {
			return err
		}
		// JSON is YAML; drop the flow style so the output reads like the rest.
		clearStyle(n.Content[0])
		d.Replace(n.Content[0])
	}
	return nil
}

func clearStyle(n *goyaml.Node) {
	n.Style &^= goyaml.FlowStyle
	if n.Kind == goyaml.ScalarNode && n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// sealAgeFile seals a secrets file value by value for age recipients.
func sealAgeFile(a *app, o *sealOptions) error {
	in, _, err := o.input(a)
	if err != nil {
		return err
	}
	var previous []byte
	var ids []age.Identity
	if o.Write != "" && len(o.AgeIdentities) > 0 {
		if prev, err := os.ReadFile(o.Write); err == nil && sealing.IsAgeFile(prev) {
			previous = prev
			if ids, err = readAgeIdentities(o.AgeIdentities); err != nil {
				return err
			}
		}
	}
	out, err := sealing.SealAgeFile(in, o.AgeRecipients, previous, ids)
	if err != nil {
		return err
	}
	return o.emit(a, out)
}

func readAgeIdentities(files []string) ([]age.Identity, error) {
	var ids []age.Identity
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--age-identity: %w", err)
		}
		got, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("--age-identity %s: malformed identity (want AGE-SECRET-KEY-1… lines)", f)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

func newUnsealCommand(a *app) *cobra.Command {
	var identities []string
	var file, write string
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Open an age-sealed secrets file (made by keyway seal --age-recipient)",
		Long: `unseal decrypts a secrets file sealed value by value with keyway seal --age-recipient and
prints the plain YAML. Tampering — a value moved to another key, a renamed key, an edited
value or MAC, a removed value — is detected and named; no output is written then.`,
		Example: `  keyway unseal --age-identity ~/.config/keyway/age.txt -f secrets.enc.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if len(identities) == 0 {
				return usagef("--age-identity is required")
			}
			ids, err := readAgeIdentities(identities)
			if err != nil {
				return err
			}
			o := sealOptions{File: file, Write: write}
			in, source, err := o.input(a)
			if err != nil {
				return err
			}
			out, err := sealing.OpenAgeFile(in, ids)
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			return o.emit(a, out)
		},
	}
	cmd.Flags().StringSliceVar(&identities, "age-identity", nil, "age identity file(s)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read from this file instead of stdin")
	cmd.Flags().StringVarP(&write, "output-file", "w", "", "write to this file (atomically) instead of stdout")
	return cmd
}

// controllerAPI reaches the unsealer's HTTP API through the API server's service proxy, as
// kubeseal does.
type controllerAPI struct {
	kube     kubeFlags
	name, ns string
}

func (o *sealOptions) controller() controllerAPI {
	return controllerAPI{kube: o.Kube, name: o.ControllerName, ns: o.ControllerNS}
}

func (c controllerAPI) client() (kubernetes.Interface, error) {
	cfg, err := c.kube.config()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func (c controllerAPI) get(ctx context.Context, path string) ([]byte, error) {
	kc, err := c.client()
	if err != nil {
		return nil, err
	}
	out, err := kc.CoreV1().Services(c.ns).ProxyGet("http", c.name, "", path, nil).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("controller %s/%s %s: %w", c.ns, c.name, path, err)
	}
	return out, nil
}

func (c controllerAPI) post(ctx context.Context, path string, body []byte) ([]byte, int, error) {
	kc, err := c.client()
	if err != nil {
		return nil, 0, err
	}
	var code int
	res := kc.CoreV1().RESTClient().Post().Namespace(c.ns).Resource("services").Name("http:" + c.name + ":").
		SubResource("proxy").Suffix(path).Body(body).Do(ctx).StatusCode(&code)
	out, err := res.Raw()
	return out, code, err
}

// online validates or re-encrypts through the controller, without private keys.
func (o *sealOptions) online(ctx context.Context, a *app) error {
	in, source, err := o.input(a)
	if err != nil {
		return err
	}
	docs, err := manifest.Read(bytes.NewReader(in), source, manifest.Limits{})
	if err != nil {
		return err
	}
	var out []any
	for _, d := range docs {
		var ss sealing.SealedSecret
		if err := decodeDoc(d, &ss); err != nil {
			return err
		}
		body, _ := json.Marshal(ss)
		path := "/v1/verify"
		if o.ReEncrypt {
			path = "/v1/rotate"
		}
		resp, code, err := o.controller().post(ctx, path, body)
		if err != nil {
			if code == http.StatusConflict {
				return fmt.Errorf("%s: document %d: the controller cannot open it: %w", d.Source, d.Index, sealing.ErrDecrypt)
			}
			return fmt.Errorf("%s: document %d: controller %s: %w", d.Source, d.Index, path, err)
		}
		if o.ReEncrypt {
			var re sealing.SealedSecret
			if err := json.Unmarshal(resp, &re); err != nil {
				return fmt.Errorf("controller %s: unexpected answer", path)
			}
			out = append(out, &re)
		}
	}
	if o.Validate {
		fmt.Fprintf(a.err, "keyway: %d SealedSecret(s) valid\n", len(docs))
		return nil
	}
	data, err := encodeAll(out, o.Output)
	if err != nil {
		return err
	}
	return o.emit(a, data)
}
