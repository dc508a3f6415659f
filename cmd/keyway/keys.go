package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/sealing"
)

func newKeysCommand(a *app) *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the sealing key ring (generate, rotate, list, export, import)",
		Long: `Keys are RSA-4096 keys with self-signed certificates, stored as kubernetes.io/tls Secrets
labelled sealedsecrets.bitnami.com/sealed-secrets-key=active in --namespace: the shape
upstream Sealed Secrets uses, so backups move between the two either way. The newest key
seals; every key unseals.`,
	}
	kf.BindFlags(cmd.PersistentFlags())
	ring := func() (sealing.Ring, error) {
		cfg, err := kf.config()
		if err != nil {
			return sealing.Ring{}, err
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return sealing.Ring{}, err
		}
		return sealing.Ring{Client: kube, Namespace: kf.Namespace}, nil
	}
	var bits int
	gen := func(verb string) *cobra.Command {
		c := &cobra.Command{
			Use:   verb,
			Short: map[string]string{"generate": "Add a new sealing key", "rotate": "Add a new sealing key; older keys keep unsealing what they sealed"}[verb],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				r, err := ring()
				if err != nil {
					return err
				}
				k, err := r.Generate(cmd.Context(), bits)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "%s/%s %s\n", kf.Namespace, k.Name, sealing.Fingerprint(&k.Private.PublicKey))
				return nil
			},
		}
		c.Flags().IntVar(&bits, "key-bits", sealing.KeyBits, "RSA key size")
		return c
	}
	list := &cobra.Command{
		Use: "list", Short: "List the keys, newest (sealing) first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := ring()
			if err != nil {
				return err
			}
			keys, err := r.Keys(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tFINGERPRINT\tCREATED\tEXPIRES")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.Name, sealing.Fingerprint(&k.Private.PublicKey), k.Created.UTC().Format(time.RFC3339), certExpiry(k.CertPEM))
			}
			return w.Flush()
		},
	}
	export := &cobra.Command{
		Use: "export", Short: "Print every key Secret as a v1 List (a backup; handle as a secret)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := ring()
			if err != nil {
				return err
			}
			out, err := r.Export(cmd.Context())
			if err != nil {
				return err
			}
			y, err := yaml.Marshal(out)
			if err != nil {
				return err
			}
			_, err = a.out.Write(y)
			return err
		},
	}
	var file string
	imp := &cobra.Command{
		Use: "import", Short: "Add the keys of a backup (keyway keys export, or upstream's key Secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("--file is required")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			keys, err := sealing.ParsePrivateKeys(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			r, err := ring()
			if err != nil {
				return err
			}
			n, err := r.Import(cmd.Context(), keys, make([][]byte, len(keys)))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "imported %d key(s) into %s (%d already present)\n", n, kf.Namespace, len(keys)-n)
			return nil
		},
	}
	imp.Flags().StringVarP(&file, "file", "f", "", "backup file: a key Secret, a List of them, or PEM keys")
	cmd.AddCommand(gen("generate"), gen("rotate"), list, export, imp)
	return cmd
}

func certExpiry(certPEM []byte) string {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return "?"
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "?"
	}
	return c.NotAfter.UTC().Format(time.RFC3339)
}
