package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/vault"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailed  = 1 // the command ran and failed (a render with unresolved references, …)
	exitUsage   = 2 // bad flags, arguments or configuration
	envPrefix   = "KEYWAY_"
	rootCmdName = "keyway"
)

type streams struct {
	in       io.Reader
	out, err io.Writer
}

// lookupEnv is os.LookupEnv, passed down so tests can run commands in-process.
type lookupEnv func(string) (string, bool)

// usageError marks errors that exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globalOptions are the persistent flags every command shares.
type globalOptions struct {
	LogLevel  string
	LogFormat string
}

func (o *globalOptions) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
}

func (o *globalOptions) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	default:
		return nil, usagef("--log-format %q: want text or json", o.LogFormat)
	}
}

// app is what every command receives: the streams, the environment and the logger.
type app struct {
	streams
	env lookupEnv
	// environ lists the whole environment (Argo CD's ARGOCD_ENV_* entries are found by
	// listing it); os.Environ but for requests served in process.
	environ func() []string
	global  globalOptions
	log     *slog.Logger
	// pool, when set (keyway argocd serve), shares backend clients between requests.
	pool *providers.Pool
}

// clients opens the backends for one command: from the process's pool when serving, so a
// Vault login outlives the request, or fresh otherwise.
func (a *app) clients(settings map[string]providers.Settings) *providers.Clients {
	if a.pool != nil {
		if vs, ok := settings["vault"]; ok && vs[vault.SettingRenew] == "" {
			vs[vault.SettingRenew] = "true" // the token outlives a request: keep it renewed
		}
		return a.pool.Clients(settings)
	}
	return providers.NewClients(registry(), settings, a.log)
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   rootCmdName,
		Short: "Secrets for GitOps: render, seal and sync Kubernetes secrets",
		Long: `keyway gets secrets from Vault, AWS Secrets Manager, GCP Secret Manager or an
age-encrypted file into Kubernetes manifests without plaintext in git.

  keyway render   substitute <path:…> and ref+backend:// references in YAML, Helm charts
                  and kustomizations (also a Helm post-renderer)
  keyway argocd   the Argo CD Config Management Plugin (CMP v2) entry points
  keyway krm      a kustomize KRM function (ResourceList in, ResourceList out)
  keyway seal     kubeseal-compatible sealing, offline and for several clusters; age-sealed
                  secrets files value by value (--age-recipient)
  keyway unseal   open an age-sealed secrets file
  keyway controller  the in-cluster unsealer (SealedSecrets → Secrets)
  keyway keys     the sealing key ring: generate, rotate, list, export, import
  keyway crds     the CustomResourceDefinitions keyway serves (ExternalSecret, SecretStore,
                  ClusterSecretStore, ClusterExternalSecret, SealedSecret)
  keyway version  print the build's version

Every flag can also be set from the environment: --secrets-file is KEYWAY_SECRETS_FILE.
Flags win over the environment, which wins over --config.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildInfo().Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd, a.env); err != nil {
				return err
			}
			log, err := a.global.logger(a.err)
			if err != nil {
				return err
			}
			a.log = log
			return nil
		},
	}
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.global.BindFlags(root.PersistentFlags())
	root.AddCommand(newVersionCommand(a))
	root.AddCommand(newRenderCommand(a))
	root.AddCommand(newArgoCDCommand(a))
	root.AddCommand(newKRMCommand(a))
	root.AddCommand(newSealCommand(a))
	root.AddCommand(newUnsealCommand(a))
	root.AddCommand(newControllerCommand(a))
	root.AddCommand(newDaemonCommand(a))
	root.AddCommand(newDiffCommand(a))
	root.AddCommand(newKeysCommand(a))
	root.AddCommand(newCRDsCommand(a))
	return root
}

func run(ctx context.Context, args []string, s streams, env lookupEnv) int {
	return runWith(ctx, args, s, env, os.Environ)
}

// runWith is run with the environment listed by environ as well as looked up by env.
func runWith(ctx context.Context, args []string, s streams, env lookupEnv, environ func() []string) int {
	return runApp(ctx, &app{streams: s, env: env, environ: environ}, args)
}

// runApp runs one command line in a and returns its exit code.
func runApp(ctx context.Context, a *app, args []string) int {
	s := a.streams
	root := newRootCommand(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var silent silentError
	if !errors.As(err, &silent) {
		fmt.Fprintf(s.err, "%s: %v\n", rootCmdName, err)
	}
	var coded codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	var usage usageError
	if errors.As(err, &usage) || isCobraUsage(err) {
		fmt.Fprintf(s.err, "Run '%s --help' for usage.\n", commandPath(root, args))
		return exitUsage
	}
	return exitFailed
}

// silentError is returned by commands that already reported the failure themselves.
type silentError struct{ err error }

func (e silentError) Error() string { return e.err.Error() }
func (e silentError) Unwrap() error { return e.err }

// isCobraUsage recognises the argument and command errors cobra builds itself.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func commandPath(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return rootCmdName
	}
	return cmd.CommandPath()
}

// applyEnv sets every flag the user did not pass from KEYWAY_<FLAG_NAME>, so that
// --secrets-file is also KEYWAY_SECRETS_FILE. It runs before the command, in cmd/ only.
func applyEnv(cmd *cobra.Command, env lookupEnv) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		v, ok := env(name)
		if !ok {
			return
		}
		if err := setFlag(f, v); err != nil {
			errs = append(errs, usagef("environment %s: %v", name, err))
			return
		}
		f.Annotations = withSource(f.Annotations, "env")
	})
	return errors.Join(errs...)
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// setFlag sets a flag from one string; slice flags take a comma-separated list.
func setFlag(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var items []string
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return sv.Replace(items)
	}
	return f.Value.Set(v)
}

const sourceAnnotation = "keyway.dev/source"

func withSource(ann map[string][]string, src string) map[string][]string {
	if ann == nil {
		ann = map[string][]string{}
	}
	ann[sourceAnnotation] = []string{src}
	return ann
}

// flagSetBy reports whether a flag was given on the command line or from the environment.
func flagSetBy(f *pflag.Flag) bool {
	return f.Changed || len(f.Annotations[sourceAnnotation]) > 0
}
