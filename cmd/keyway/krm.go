package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/plugins/kustomize"
	"github.com/keyway-dev/keyway/plugins/render"
)

func newKRMCommand(a *app) *cobra.Command {
	var o renderOptions
	cmd := &cobra.Command{
		Use:   "krm",
		Short: "Run as a kustomize KRM function: ResourceList on stdin, ResourceList on stdout",
		Long: `krm substitutes secret references in the items of a KRM ResourceList. Settings come from
keyway's flags and environment (the operator's: addresses, credentials, the age identity)
and, where those set nothing, from the functionConfig: a ConfigMap of the repository whose
data may name only secrets-file (inside the working directory) and backend. Anything else
in it is refused: a repository cannot point keyway at another server or a file of the host.

On any unresolved reference the items are returned unchanged, every problem is reported in
results with severity error, and the exit status is 1, so kustomize fails the build.

  # kustomization.yaml
  transformers:
  - keyway-fn.yaml
  # keyway-fn.yaml
  apiVersion: v1
  kind: ConfigMap
  metadata:
    name: keyway
    annotations:
      config.kubernetes.io/function: |
        exec:
          path: /usr/local/bin/keyway
          args: [krm]
  data:
    secrets-file: secrets.enc.yaml

  KEYWAY_AGE_IDENTITY=/etc/keyway/age.txt kustomize build --enable-alpha-plugins --enable-exec .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKRM(cmd, a, &o)
		},
	}
	o.BindFlags(cmd.Flags())
	return cmd
}

// functionConfigSettings are what a functionConfig (repository content) may set, and only
// where the operator (flags, environment, --config) set nothing: which file of the
// repository holds its secrets, and the backend. Addresses, credentials, identities and
// provider sections come from the operator alone, so a repository cannot send a token to
// a listener of its choosing or read a file of the host.
var functionConfigSettings = map[string]bool{"secrets-file": true, "backend": true}

// narrowFunctionConfig refuses what raw may not set and drops what the operator already
// set; a secrets file must lie in the working directory.
func narrowFunctionConfig(cmd *cobra.Command, env lookupEnv, raw map[string]any, cwd string) error {
	for key, v := range raw {
		if !functionConfigSettings[key] {
			return usagef("functionConfig: %q is the operator's setting (a flag or the environment), not the repository's; a functionConfig may set only secrets-file and backend", key)
		}
		f := cmd.Flags().Lookup(key)
		_, avp := env("AVP_TYPE")
		if flagSetBy(f) || key == "backend" && avp {
			delete(raw, key) // the operator's setting wins
			continue
		}
		if key == "secrets-file" {
			p, _ := v.(string)
			if !filepath.IsAbs(p) {
				p = filepath.Join(cwd, p)
			}
			if _, ok := confine.Rel(cwd, p); !ok || p == "" {
				return usagef("functionConfig: secrets-file %q is outside the directory kustomize runs the function in", reference.Abbrev(fmt.Sprint(v)))
			}
		}
	}
	return nil
}

func runKRM(cmd *cobra.Command, a *app, o *renderOptions) error {
	cwd, _ := os.Getwd()
	rl, err := kustomize.ReadResourceList(a.in, cwd, manifest.Limits{MaxDocumentBytes: o.MaxDocBytes})
	if errors.Is(err, kustomize.ErrNotResourceList) {
		return usagef("stdin: %v", err)
	}
	if err != nil {
		return err
	}
	if rl.Config != nil {
		if err := narrowFunctionConfig(cmd, a.env, rl.Config, cwd); err != nil {
			return err
		}
		if _, err := applySettings(cmd.Flags(), rl.Config, cwd, "functionConfig"); err != nil {
			return err
		}
	}
	if err := o.complete(cmd, a.env); err != nil {
		return err
	}
	ctx, cancel := contextWithTimeout(cmd, o.Timeout)
	defer cancel()
	settings, err := o.settings(cmd, a)
	if err != nil {
		return err
	}
	clients := a.clients(settings)
	defer clients.Close()
	_, rerr := render.New(clients, render.Options{DefaultBackend: o.Backend, Concurrency: o.Concurrency, MaxReferences: o.MaxRefsTotal, Logger: a.log}).Render(ctx, rl.Items)
	var failed *render.Error
	if rerr != nil && !errors.As(rerr, &failed) {
		return rerr
	}
	var results []kustomize.Result
	if failed != nil {
		for _, p := range failed.Problems {
			results = append(results, kustomize.Result{Message: p.String(), Severity: "error", Field: p.Field})
		}
	}
	if err := rl.Write(a.out, results); err != nil {
		return err
	}
	if failed != nil {
		fmt.Fprintf(a.err, "keyway: %v\n", failed)
		return silentError{failed}
	}
	return nil
}
