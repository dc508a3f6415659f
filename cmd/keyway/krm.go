package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
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

type krmResult struct {
	Message  string `yaml:"message"`
	Severity string `yaml:"severity"`
	Field    *struct {
		Path string `yaml:"path"`
	} `yaml:"field,omitempty"`
}

func runKRM(cmd *cobra.Command, a *app, o *renderOptions) error {
	in, err := io.ReadAll(io.LimitReader(a.in, 256<<20))
	if err != nil {
		return err
	}
	var rl yaml.Node
	if err := yaml.Unmarshal(in, &rl); err != nil || rl.Kind != yaml.DocumentNode || len(rl.Content) == 0 {
		return usagef("stdin is not a KRM ResourceList")
	}
	root := rl.Content[0]
	if manifest.String(root, "kind") != "ResourceList" {
		return usagef("stdin is a %q, not a KRM ResourceList", manifest.String(root, "kind"))
	}
	if fc := manifest.Get(root, "functionConfig", "data"); fc != nil {
		var raw map[string]any
		if err := fc.Decode(&raw); err != nil {
			return usagef("functionConfig.data: %v", err)
		}
		cwd, _ := os.Getwd()
		if err := narrowFunctionConfig(cmd, a.env, raw, cwd); err != nil {
			return err
		}
		if _, err := applySettings(cmd.Flags(), raw, cwd, "functionConfig"); err != nil {
			return err
		}
	}
	if err := o.complete(cmd, a.env); err != nil {
		return err
	}
	items := manifest.Get(root, "items")
	var docs []*manifest.Document
	var originals []*yaml.Node
	if items != nil {
		cwd, _ := os.Getwd()
		for i, it := range items.Content {
			originals = append(originals, manifest.DeepCopy(it))
			d, err := manifest.FromNode(it, "items", i, manifest.Limits{MaxDocumentBytes: o.MaxDocBytes})
			if err != nil {
				return err
			}
			d.Dir, d.Confine = cwd, cwd
			docs = append(docs, d)
		}
	}
	ctx, cancel := contextWithTimeout(cmd, o.Timeout)
	defer cancel()
	settings, err := o.settings(cmd, a)
	if err != nil {
		return err
	}
	clients := a.clients(settings)
	defer clients.Close()
	_, rerr := render.New(clients, render.Options{DefaultBackend: o.Backend, Concurrency: o.Concurrency, MaxReferences: o.MaxRefsTotal, Logger: a.log}).Render(ctx, docs)
	var failed *render.Error
	if rerr != nil && !errors.As(rerr, &failed) {
		return rerr
	}
	if failed != nil {
		// Nothing is half-substituted: the items go back as they came, with the problems.
		copy(items.Content, originals)
		var results []krmResult
		for _, p := range failed.Problems {
			r := krmResult{Message: p.String(), Severity: "error"}
			if p.Field != "" {
				r.Field = &struct {
					Path string `yaml:"path"`
				}{p.Field}
			}
			results = append(results, r)
		}
		var rn yaml.Node
		if err := rn.Encode(results); err != nil {
			return err
		}
		manifest.Set(root, "results", &rn)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&rl); err != nil {
		return err
	}
	if _, err := a.out.Write(out.Bytes()); err != nil {
		return err
	}
	if failed != nil {
		fmt.Fprintf(a.err, "keyway: %v\n", failed)
		return silentError{failed}
	}
	return nil
}
