package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
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
	// controllerGiven: --controller-name or --controller-namespace was set; otherwise the
	// controller is looked for (kubeseal's default, then keyway's chart).
	controllerGiven bool
	Kube            kubeFlags
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
	fs.StringVar(&o.ControllerName, "controller-name", "sealed-secrets-controller", "Service name of the unsealer, used when no --cert is given and for online --validate/--re-encrypt (when neither this nor --controller-namespace is set and kube-system/sealed-secrets-controller does not exist, keyway's chart's controller Service is found by its labels)")
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
fingerprint (keyway.dev/sealing-key) so the unsealer tries that key first.

Input streams: documents are read one at a time and sealed on every core, so memory does not
grow with the input; the output appears (on stdout or as -w's file) only once every document
has succeeded.`,
		Example: `  keyway seal --cert prod.pem < secret.yaml > sealed.json
  keyway seal --cert eu.pem --cert us.pem -o yaml -f secret.yaml -w sealed.yaml
  echo -n s3cret | keyway seal --raw --cert prod.pem --namespace shop --name db
  keyway seal --recovery-unseal --recovery-private-key backup.yaml -f sealed.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.controllerGiven = cmd.Flags().Changed("controller-name") || cmd.Flags().Changed("controller-namespace")
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
		c, err := o.controller()
		if err != nil {
			return err
		}
		cert, err := c.Cert(ctx)
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
	pubs, err := o.publicKeys(ctx)
	if err != nil {
		return err
	}
	keys, err := o.privateKeys()
	if err != nil {
		return err
	}
	if o.Raw {
		in, _, err := o.input(a)
		if err != nil {
			return err
		}
		return o.sealRaw(a, in, pubs, scope)
	}
	in, source, err := o.open(a)
	if err != nil {
		return err
	}
	defer in.Close()
	// Documents stream through: read one, seal (or open) it on a worker, write its result
	// in input order to a temporary file that becomes the output only when every document
	// succeeded. Memory stays flat however long the input.
	opts := sealing.SealOptions{Scope: scope, ScopeSet: o.Scope != "", AllowEmptyData: o.AllowEmptyData}
	each := func(d *manifest.Document) ([]any, error) { return o.document(ctx, d, pubs, keys, opts) }
	w, err := newOutput(o.Write)
	if err != nil {
		return err
	}
	defer w.discard()
	stream := manifest.NewStream(in, source, manifest.Limits{})
	docs, objs := 0, 0
	var merged []any // --merge-into takes one result
	workers := runtime.GOMAXPROCS(0)
	err = parallel.Pipeline(workers, 4*workers, func() (*manifest.Document, bool, error) {
		d, err := stream.Next()
		if errors.Is(err, io.EOF) {
			return nil, false, nil
		}
		docs++
		return d, err == nil, err
	}, each, func(results []any) error {
		for _, obj := range results {
			if o.MergeInto != "" {
				merged = append(merged, obj)
				continue
			}
			if err := w.encode(obj, o.Output, objs); err != nil {
				return err
			}
			objs++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if docs == 0 {
		return fmt.Errorf("%s: no document to seal (empty input)", source)
	}
	if o.Validate {
		fmt.Fprintf(a.err, "keyway: %d SealedSecret(s) valid\n", docs)
		return nil
	}
	if o.MergeInto != "" {
		if len(merged) != 1 {
			return usagef("--merge-into takes exactly one Secret and one --cert")
		}
		data, err := os.ReadFile(o.MergeInto)
		if err != nil {
			return fmt.Errorf("--merge-into: %w", err)
		}
		out, err := sealing.MergeFile(data, merged[0].(*sealing.SealedSecret))
		if err != nil {
			return fmt.Errorf("--merge-into %s: %w", o.MergeInto, err)
		}
		return writeAtomic(o.MergeInto, out)
	}
	return w.commit(a.out)
}

func appendAll[T any](out []any, items []T) []any {
	for _, it := range items {
		out = append(out, it)
	}
	return out
}

// secret reads one input document as the Secret to seal, applying --namespace.
func (o *sealOptions) secret(d *manifest.Document) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := manifest.Decode(d, &s); err != nil {
		return nil, err
	}
	if s.Kind != "Secret" {
		return nil, fmt.Errorf("%s: document %d: kind %q is not a Secret", d.Source, d.Index, s.Kind)
	}
	switch {
	case s.Namespace == "":
		s.Namespace = o.Namespace
	case o.Namespace != "" && o.Namespace != s.Namespace:
		return nil, fmt.Errorf("%s: document %d: namespace mismatch: the Secret says %q, --namespace says %q", d.Source, d.Index, s.Namespace, o.Namespace)
	}
	return &s, nil
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

// document seals one Secret for every certificate, or, in the recovery modes, opens
// (--recovery-unseal), re-encrypts (--re-encrypt) or checks (--validate) one SealedSecret.
func (o *sealOptions) document(ctx context.Context, d *manifest.Document, pubs []*rsa.PublicKey, keys []*rsa.PrivateKey, opts sealing.SealOptions) ([]any, error) {
	var out []any
	if !o.RecoveryUnseal && !o.Validate && !o.ReEncrypt {
		sec, err := o.secret(d)
		if err != nil {
			return nil, err
		}
		sealed, err := sealing.SealAll([]*corev1.Secret{sec}, pubs, opts)
		var ie *sealing.ItemError
		if errors.As(err, &ie) {
			err = ie.Err
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
		}
		return appendAll(out, sealed), nil
	}
	var ss sealing.SealedSecret
	if err := manifest.Decode(d, &ss); err != nil {
		return nil, err
	}
	var err error
	switch {
	case o.RecoveryUnseal:
		var s *corev1.Secret
		s, _, err = sealing.Unseal(ctx, rand.Reader, &ss, keys)
		out = append(out, s)
	case o.ReEncrypt:
		var re []*sealing.SealedSecret
		re, err = sealing.ReEncrypt(&ss, keys, pubs)
		out = appendAll(out, re)
	default:
		_, err = sealing.Check(rand.Reader, &ss, keys)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: document %d: %w", d.Source, d.Index, err)
	}
	return out, nil
}
