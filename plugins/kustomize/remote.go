package kustomize

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/types"
	sigsyaml "sigs.k8s.io/yaml"
)

// ErrRemote is returned for a kustomization that names a remote resource.
var ErrRemote = errors.New("remote references are refused: keyway renders without network access (vendor the resource into the repository)")

// checkedFS checks every kustomization file it serves for remote references before
// kustomize reads it. Kustomize takes a failed read of a kustomization file for a missing
// one, so the refusal is also kept for Build to report.
type checkedFS struct {
	*rootFS
	refused *error
}

func (f checkedFS) ReadFile(name string) ([]byte, error) {
	data, err := f.rootFS.ReadFile(name)
	if err != nil {
		return data, err
	}
	check := checkRemote
	if !slices.Contains(kustomizationNames, filepath.Base(name)) {
		check = checkPluginConfig
	}
	if err := check(data); err != nil {
		err = fmt.Errorf("%s: %w", name, err)
		if *f.refused == nil {
			*f.refused = err
		}
		return nil, err
	}
	return data, nil
}

// checkRemote refuses a kustomization with a remote reference in any field kustomize loads
// from: resources, components, bases, crds, configurations, openapi, generators,
// transformers, validators, generator files and envs, patch and replacement paths, and
// helmCharts (which run helm and download charts).
func checkRemote(data []byte) error {
	var k types.Kustomization
	if err := sigsyaml.Unmarshal(data, &k); err != nil {
		return nil // kustomize reports its own parse error
	}
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 || k.HelmGlobals != nil {
		return errors.New("helmCharts are refused: they run helm and download charts; render the chart with keyway's Helm support instead")
	}
	type field struct {
		name  string
		items []string
	}
	// Deprecated fields are still honoured by kustomize, so they are checked too.
	fields := []field{
		//lint:ignore SA1019 kustomize still loads bases
		{"resources", k.Resources}, {"components", k.Components}, {"bases", k.Bases}, {"crds", k.Crds},
		{"configurations", k.Configurations}, {"generators", k.Generators}, {"transformers", k.Transformers},
		{"validators", k.Validators}, {"openapi.path", []string{k.OpenAPI["path"]}},
	}
	for i, g := range k.ConfigMapGenerator {
		fields = append(fields, field{fmt.Sprintf("configMapGenerator[%d]", i), append(append(sources(g.FileSources), g.EnvSources...), g.EnvSource)})
	}
	for i, g := range k.SecretGenerator {
		fields = append(fields, field{fmt.Sprintf("secretGenerator[%d]", i), append(append(sources(g.FileSources), g.EnvSources...), g.EnvSource)})
	}
	for i, p := range k.Patches {
		fields = append(fields, field{fmt.Sprintf("patches[%d].path", i), []string{p.Path}})
	}
	//lint:ignore SA1019 kustomize still loads patchesJson6902 paths
	for i, p := range k.PatchesJson6902 {
		fields = append(fields, field{fmt.Sprintf("patchesJson6902[%d].path", i), []string{p.Path}})
	}
	//lint:ignore SA1019 kustomize still loads patchesStrategicMerge paths
	for i, p := range k.PatchesStrategicMerge {
		fields = append(fields, field{fmt.Sprintf("patchesStrategicMerge[%d]", i), []string{string(p)}})
	}
	for i, r := range k.Replacements {
		fields = append(fields, field{fmt.Sprintf("replacements[%d].path", i), []string{r.Path}})
	}
	for _, f := range fields {
		for _, s := range f.items {
			if isRemote(s) {
				return fmt.Errorf("%s: %q: %w", f.name, s, ErrRemote)
			}
		}
	}
	return nil
}

// checkPluginConfig refuses a builtin generator or transformer configuration (a file named
// in generators: or transformers:) that names a remote file, or that inflates a Helm chart.
func checkPluginConfig(data []byte) error {
	var cfg struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Files      []string `json:"files"`
		Envs       []string `json:"envs"`
		Env        string   `json:"env"`
		Path       string   `json:"path"`
		Repo       string   `json:"repo"`
	}
	if err := sigsyaml.Unmarshal(data, &cfg); err != nil || cfg.APIVersion != "builtin" {
		return nil // not a builtin plugin's configuration: a resource, read as it is
	}
	if cfg.Kind == "HelmChartInflationGenerator" {
		return errors.New("HelmChartInflationGenerator is refused: it runs helm and downloads charts; render the chart with keyway's Helm support instead")
	}
	for _, s := range append(append(sources(cfg.Files), cfg.Envs...), cfg.Env, cfg.Path, cfg.Repo) {
		if isRemote(s) {
			return fmt.Errorf("%s: %q: %w", cfg.Kind, s, ErrRemote)
		}
	}
	return nil
}

// sources strips the optional "key=" of generator file sources.
func sources(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		if _, v, ok := strings.Cut(s, "="); ok {
			s = v
		}
		out[i] = s
	}
	return out
}

// isRemote reports whether a kustomization entry is something kustomize would clone or
// fetch rather than read from the checkout: anything with a ':' (a URL of any scheme, even
// "http:/host", scp-style "user@host:path", "github.com:org/repo", go-getter "git::…"), a
// host-qualified repository (github.com/org/repo) or git query parameters (?ref=, …).
// Inline YAML (a patch or generator written in place) holds a newline and is not a
// reference. The build has neither network nor git either way; this names the refusal.
func isRemote(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "\n") {
		return false
	}
	lower := strings.ToLower(s)
	switch {
	case strings.Contains(lower, ":"), strings.HasPrefix(lower, "git@"),
		strings.Contains(lower, "?ref="), strings.Contains(lower, "?version="), strings.Contains(lower, "?submodules="),
		strings.Contains(lower, "?timeout="), strings.Contains(lower, "&ref="):
		return true
	}
	host, _, _ := strings.Cut(lower, "/")
	for _, h := range []string{"github.com", "gitlab.com", "bitbucket.org", "dev.azure.com", "ssh.dev.azure.com"} {
		if host == h || strings.HasSuffix(host, "."+h) {
			return true
		}
	}
	return false
}
