package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sealing"
)

// renderOptions are `keyway render`'s settings; flags, the environment and --config fill them.
type renderOptions struct {
	Backend      string
	SecretsFile  string
	AgeIdentity  []string
	Concurrency  int
	Output       string
	ConfigFile   string
	Timeout      time.Duration
	MaxDocBytes  int
	MaxInput     int64
	MaxBuildMem  int64
	MaxRefsTotal int
	Vault        vaultFlags
	Cloud        cloudFlags
	Source       string
	Helm         helmFlags
	SealTo       string
	SealNS       string

	// sections holds the config file's per-backend sections.
	sections map[string]map[string]string
}

func (o *renderOptions) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Backend, "backend", "", "backend for <path:…> and <KEY> placeholders: "+strings.Join(registry().Names(), ", ")+" (default file when --secrets-file is set)")
	fs.StringVar(&o.SecretsFile, "secrets-file", "", "the file backend's secrets: YAML/JSON, top-level keys are secret paths; may be age-encrypted")
	fs.StringSliceVar(&o.AgeIdentity, "age-identity", nil, "age identity file(s) that decrypt an encrypted secrets file (repeatable)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "distinct secrets fetched at once")
	fs.StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml or json")
	fs.StringVar(&o.ConfigFile, "config", "", "YAML file holding any of these settings by flag name; flags and environment win")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up the whole render after this long")
	fs.IntVar(&o.MaxDocBytes, "max-document-bytes", 16<<20, "refuse a document larger than this")
	fs.Int64Var(&o.MaxInput, "max-input-bytes", 64<<20, "refuse input larger than this in all: the files read, a chart's or kustomization's files, a build's output")
	fs.Int64Var(&o.MaxBuildMem, "max-build-memory", 1<<30, "heap a Helm or kustomize build may use in its worker process before it is stopped")
	fs.IntVar(&o.MaxRefsTotal, "max-references", 100_000, "refuse a render with more references than this")
	o.Vault.BindFlags(fs)
	o.Cloud.BindFlags(fs)
	fs.StringVar(&o.Source, "source", "auto", "how to read a directory: auto (Chart.yaml → Helm, kustomization → kustomize, else plain YAML), plain, helm or kustomize")
	o.Helm.BindFlags(fs)
	fs.StringVar(&o.SealTo, "seal-to", "", "certificate (file or URL) of a cluster's sealing key: every rendered Secret that received secret values is written as a SealedSecret for that cluster")
	fs.StringVar(&o.SealNS, "seal-namespace", "", "namespace for sealing Secrets that name none (Argo CD: the Application's namespace)")
}

// helmFlags are `helm template`'s settings that keyway supports, as structured flags.
type helmFlags struct {
	ReleaseName, Namespace, KubeVersion string
	Values, Set, SetString, APIVersions []string
	SkipCRDs, SkipTests                 bool
}

func (h *helmFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&h.ReleaseName, "release-name", "", "Helm release name (default: the chart's name)")
	fs.StringVarP(&h.Namespace, "namespace", "n", "", "Helm release namespace (default: default)")
	fs.StringSliceVarP(&h.Values, "values", "f", nil, "Helm values file, relative to the chart (repeatable)")
	fs.StringArrayVar(&h.Set, "set", nil, "Helm value KEY=VALUE (repeatable)")
	fs.StringArrayVar(&h.SetString, "set-string", nil, "Helm string value KEY=VALUE (repeatable)")
	fs.BoolVar(&h.SkipCRDs, "skip-crds", false, "leave out the chart's crds/")
	fs.BoolVar(&h.SkipTests, "skip-tests", false, "leave out the chart's test hooks")
	fs.StringVar(&h.KubeVersion, "kube-version", "", "Kubernetes version for Helm's Capabilities (e.g. 1.31.0)")
	fs.StringSliceVar(&h.APIVersions, "api-versions", nil, "extra API versions for Helm's Capabilities (repeatable)")
}

func (h *helmFlags) options() helm.Options {
	return helm.Options{ReleaseName: h.ReleaseName, Namespace: h.Namespace, ValuesFiles: h.Values, Set: h.Set, SetString: h.SetString,
		SkipCRDs: h.SkipCRDs, SkipTests: h.SkipTests, KubeVersion: h.KubeVersion, APIVersions: h.APIVersions}
}

func newRenderCommand(a *app) *cobra.Command {
	var o renderOptions
	cmd := &cobra.Command{
		Use:     "render [flags] PATH...",
		Aliases: []string{"post-render"},
		Short:   "Substitute secret references in Kubernetes manifests",
		Long: `Render reads YAML or JSON manifests, replaces every secret reference with its value and
writes the result to stdout. PATH is a file, a directory (walked recursively for .yaml, .yml
and .json files in sorted order) or - for stdin.

References (argocd-vault-plugin syntax works unchanged):
  <path:secret/data/app#password>         a key of a secret, from --backend
  <path:secret/data/app#password#2>       … at version 2
  <password>                              in a document annotated avp.kubernetes.io/path
  <path:secret/data/app#cert | base64encode>
                                          modifiers: base64encode, base64decode, jsonParse,
                                          yamlParse, jsonPath {…}, indent N, sha256sum
  ref+file://secrets.yaml#/db/password    a URI naming its backend, JSON pointer after #
  ref+vault://secret/data/app#/password   Vault KV (v1 or v2)
  ref+awssm://prod/db#/url                AWS Secrets Manager (name or ARN; ?version=AWSPREVIOUS)
  ref+awsssm:///prod/db/password          AWS SSM Parameter Store (decrypted; ?version=N)
  ref+gcpsm://projects/p/secrets/s#/key   GCP Secret Manager (/versions/N, default latest)

Each distinct secret is fetched once. If any reference cannot be resolved nothing is written
to stdout, every problem is listed on stderr with file, document and field, and the exit
status is 1 (so Argo CD never sees an empty render and prunes an application). Usage errors
exit 2.

A directory holding Chart.yaml is rendered as a Helm chart and one holding a kustomization
is built with kustomize, both in process and without network access; references are
substituted in what they produce, so placeholders in values files, templates and overlays
all work (--source forces a kind). As a Helm post-renderer, keyway reads stdin:
  helm template app ./chart --post-renderer keyway --post-renderer-args render --post-renderer-args -

Environment: every flag is also KEYWAY_<FLAG> (KEYWAY_SECRETS_FILE, KEYWAY_BACKEND, …).
argocd-vault-plugin's AVP_TYPE selects the backend too. Precedence: flag, KEYWAY_*, AVP_*,
--config, default.`,
		Example: `  # render the quickstart with its demo-only age identity
  keyway render --secrets-file examples/quickstart/secrets.enc.yaml \
    --age-identity examples/quickstart/demo-identity.txt examples/quickstart/manifests

  # as a filter
  kustomize build overlays/prod | keyway render --backend file --secrets-file s.yaml -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd, a.env); err != nil {
				return err
			}
			return runRender(cmd, a, &o, args, renderRun{load: render.LoadOptions{Source: o.Source, Helm: o.Helm.options()}})
		},
	}
	o.BindFlags(cmd.Flags())
	return cmd
}

// complete applies argocd-vault-plugin's environment and --config beneath flags and
// KEYWAY_* variables, then validates.
func (o *renderOptions) complete(cmd *cobra.Command, env lookupEnv) error {
	fs := cmd.Flags()
	if !flagSetBy(fs.Lookup("backend")) {
		if t, ok := env("AVP_TYPE"); ok && t != "" {
			b, err := backendForAVPType(t)
			if err != nil {
				return usageError{err}
			}
			o.Backend = b
			fs.Lookup("backend").Annotations = withSource(nil, "env")
		}
	}
	if o.ConfigFile != "" {
		sections, err := applyConfigFile(fs, o.ConfigFile)
		if err != nil {
			return err
		}
		o.sections = sections
	}
	if o.Backend == "" && o.SecretsFile != "" {
		o.Backend = "file"
	}
	if o.Backend != "" {
		if _, ok := registry().Lookup(o.Backend); !ok {
			return usagef("--backend %q: not a backend this build knows (known: %s)", o.Backend, strings.Join(registry().Names(), ", "))
		}
	}
	if o.Concurrency < 1 || o.Concurrency > 1024 {
		return usagef("--concurrency %d: want 1 to 1024", o.Concurrency)
	}
	if _, err := manifest.ParseFormat(o.Output); err != nil {
		return usageError{err}
	}
	if o.Timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	switch o.Source {
	case render.SourceAuto, render.SourcePlain, render.SourceHelm, render.SourceKustomize:
	default:
		return usagef("--source %q: want auto, plain, helm or kustomize", o.Source)
	}
	if v := o.Helm.KubeVersion; v != "" {
		if _, err := chartutil.ParseKubeVersion(v); err != nil {
			return usagef("--kube-version %q: not a Kubernetes version such as 1.31.0", v)
		}
	}
	if n := o.Helm.ReleaseName; n != "" {
		if err := chartutil.ValidateReleaseName(n); err != nil {
			return usagef("--release-name %q: %v", n, err)
		}
	}
	if o.MaxDocBytes <= 0 || o.MaxInput <= 0 || o.MaxBuildMem <= 0 || o.MaxRefsTotal <= 0 {
		return usagef("--max-document-bytes, --max-input-bytes, --max-build-memory and --max-references must be positive")
	}
	return nil
}

// backendForAVPType maps argocd-vault-plugin's AVP_TYPE onto keyway's backend names.
func backendForAVPType(t string) (string, error) {
	switch strings.ToLower(t) {
	case "vault":
		return "vault", nil
	case "awssecretsmanager":
		return "awssm", nil
	case "awsssm", "awsparameterstore":
		return "awsssm", nil
	case "gcpsecretmanager":
		return "gcpsm", nil
	case "file":
		return "file", nil
	}
	return "", fmt.Errorf("AVP_TYPE %q: keyway supports vault, awssecretsmanager and gcpsecretmanager", t)
}

// renderRun is what differs between `keyway render` and the plugin entry points.
type renderRun struct {
	load  render.LoadOptions
	check func(providers.Ref) error
}

func runRender(cmd *cobra.Command, a *app, o *renderOptions, args []string, run renderRun) error {
	ctx, cancel := contextWithTimeout(cmd, o.Timeout)
	defer cancel()
	start := time.Now()

	settings, err := o.settings(cmd, a)
	if err != nil {
		return err
	}
	// The certificate is checked before any secret is read.
	var sealTo *rsa.PublicKey
	if o.SealTo != "" {
		if sealTo, err = loadCert(ctx, o.SealTo); err != nil {
			return err
		}
	}
	clients := a.clients(settings)
	defer clients.Close()

	docs, stats, err := o.pipeline(ctx, a, clients, run.check, args, a.in, run.load, sealTo, o.SealNS)
	if err != nil {
		var rerr *render.Error
		if errors.As(err, &rerr) {
			fmt.Fprintf(a.err, "keyway: render failed, nothing written: %v\n", rerr)
			return silentError{err}
		}
		return err
	}
	format, _ := manifest.ParseFormat(o.Output)
	if err := manifest.Encode(a.out, docs, format); err != nil {
		return err
	}
	a.log.Debug("rendered", "documents", stats.Documents, "references", stats.References, "fetches", stats.Fetches, "duration", time.Since(start))
	return nil
}

// pipeline is the one render pipeline of every entry point that reads paths (render, the
// Argo CD plugin, the daemon): an engine over f whose fetches start while the input is
// still being parsed, the load with the render's limits and isolated builds, then, with
// sealTo, the Secrets sealed for namespace sealNS. On any error nothing is returned.
func (o *renderOptions) pipeline(ctx context.Context, a *app, f render.Fetcher, check func(providers.Ref) error, paths []string, in io.Reader,
	load render.LoadOptions, sealTo *rsa.PublicKey, sealNS string) ([]*manifest.Document, render.Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess := render.New(f, render.Options{DefaultBackend: o.Backend, Concurrency: o.Concurrency, MaxReferences: o.MaxRefsTotal, Logger: a.log, Check: check}).Start(ctx)
	load.Limits = manifest.Limits{MaxDocumentBytes: o.MaxDocBytes, MaxStreamBytes: o.MaxInput}
	load.Builder = builder(o.MaxBuildMem)
	docs, err := render.LoadWith(ctx, paths, in, load, sess.Add)
	if err != nil {
		cancel() // the fetches in flight stop
		_, _ = sess.Finish(nil)
		return nil, render.Stats{}, err
	}
	stats, err := sess.Finish(docs)
	if err != nil {
		return nil, stats, err
	}
	if sealTo != nil {
		if err := sealing.SealRendered(docs, sealTo, sealNS); err != nil {
			return nil, stats, err
		}
	}
	return docs, stats, nil
}

// settings assembles every backend's settings from flags, environment and config sections.
func (o *renderOptions) settings(cmd *cobra.Command, a *app) (map[string]providers.Settings, error) {
	return backendSettings(cmd.Flags(), &o.Vault, &o.Cloud, o.sections, a.env)
}
