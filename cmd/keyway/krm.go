package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
)

func newKRMCommand(a *app) *cobra.Command {
	var o renderOptions
	cmd := &cobra.Command{
		Use:   "krm",
		Short: "Run as a kustomize KRM function: ResourceList on stdin, ResourceList on stdout",
		Long: `krm substitutes secret references in the items of a KRM ResourceList. Settings come from
keyway's flags and environment and from the functionConfig, a ConfigMap whose data uses the
flag names (backend, secrets-file, age-identity, vault-address, …).

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
    age-identity: /etc/keyway/age.txt

  kustomize build --enable-alpha-plugins --enable-exec .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKRM(cmd, a, &o)
		},
	}
	o.BindFlags(cmd.Flags())
	return cmd
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
		sections, err := applySettings(cmd.Flags(), raw, cwd, "functionConfig")
		if err != nil {
			return err
		}
		o.sections = sections
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
