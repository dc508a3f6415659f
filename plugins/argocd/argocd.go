// Package argocd is keyway's Argo CD Config Management Plugin (CMP v2) mode: it reads the
// environment Argo CD's cmp-server passes to a plugin, turns structured parameters into
// render options, and enforces that an application's own settings cannot redirect which
// backend, address, namespace or credentials are used unless the sidecar's configuration
// allows it. The environment is handed in (Parse); cmd/ reads it from the process, or from a
// request when keyway serves the plugin protocol itself (plugins/argocd/cmp).
package argocd

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/providers"
)

// EnvPrefix is how Argo CD passes an Application's plugin env entries.
const EnvPrefix = "ARGOCD_ENV_"

// Parameter is one entry of ARGOCD_APP_PARAMETERS.
type Parameter struct {
	Name   string            `json:"name"`
	String *string           `json:"string,omitempty"`
	Array  []string          `json:"array,omitempty"`
	Map    map[string]string `json:"map,omitempty"`
}

// Env is what the cmp-server passes to generate.
type Env struct {
	AppName, AppNamespace, Revision, Project string
	SourcePath, SourceRepoURL                string
	KubeVersion                              string
	APIVersions                              []string
	Parameters                               []Parameter
	// AppEnv holds ARGOCD_ENV_* entries with the prefix removed: the Application's own.
	AppEnv map[string]string
}

// Parse reads an environment given as KEY=VALUE entries.
func Parse(environ []string) (Env, error) {
	e := Env{AppEnv: map[string]string{}}
	get := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		get[k] = v
		if name, ok := strings.CutPrefix(k, EnvPrefix); ok && name != "" {
			e.AppEnv[name] = v
		}
	}
	e.AppName = get["ARGOCD_APP_NAME"]
	e.AppNamespace = get["ARGOCD_APP_NAMESPACE"]
	e.Revision = get["ARGOCD_APP_REVISION"]
	e.Project = get["ARGOCD_APP_PROJECT_NAME"]
	e.SourcePath = get["ARGOCD_APP_SOURCE_PATH"]
	e.SourceRepoURL = get["ARGOCD_APP_SOURCE_REPO_URL"]
	e.KubeVersion = get["KUBE_VERSION"]
	for v := range strings.SplitSeq(get["KUBE_API_VERSIONS"], ",") {
		if v = strings.TrimSpace(v); v != "" {
			e.APIVersions = append(e.APIVersions, v)
		}
	}
	if p := strings.TrimSpace(get["ARGOCD_APP_PARAMETERS"]); p != "" {
		if err := json.Unmarshal([]byte(p), &e.Parameters); err != nil {
			return e, fmt.Errorf("ARGOCD_APP_PARAMETERS is not the JSON list Argo CD sends: %v", err)
		}
	}
	return e, nil
}

// Detected reports whether the process runs under Argo CD's cmp-server.
func (e Env) Detected() bool { return e.AppName != "" }

func (e Env) param(name string) (Parameter, bool) {
	for _, p := range e.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return Parameter{}, false
}

// Parameter names keyway announces (see examples/argocd/plugin.yaml).
const (
	ParamValuesFiles = "values-files" // array: Helm values files inside the repository
	ParamValues      = "values"       // string: inline Helm values YAML
	ParamSet         = "set"          // map: Helm --set pairs
	ParamSetString   = "set-string"   // map: Helm --set-string pairs
	ParamSkipCRDs    = "skip-crds"    // string: "true" skips the chart's crds/
	ParamReleaseName = "release-name" // string: default the Application's name
	ParamSource      = "source"       // string: auto, plain, helm or kustomize
)

var knownParams = []string{ParamValuesFiles, ParamValues, ParamSet, ParamSetString, ParamSkipCRDs, ParamReleaseName, ParamSource}

// Options are the render settings an Application controls.
type Options struct {
	Source string
	Helm   helm.Options
}

// RenderOptions turns the structured parameters into render settings. An unknown parameter
// is an error naming it, so a typo does not silently render something else.
func (e Env) RenderOptions() (Options, error) {
	for _, p := range e.Parameters {
		if !slices.Contains(knownParams, p.Name) {
			return Options{}, fmt.Errorf("unknown plugin parameter %q (known: %s)", p.Name, strings.Join(knownParams, ", "))
		}
	}
	o := Options{Source: "auto"}
	o.Helm.ReleaseName = e.AppName
	o.Helm.Namespace = e.AppNamespace
	o.Helm.KubeVersion = strings.TrimPrefix(e.KubeVersion, "v")
	o.Helm.APIVersions = e.APIVersions
	if p, ok := e.param(ParamReleaseName); ok && p.String != nil && *p.String != "" {
		o.Helm.ReleaseName = *p.String
	}
	if p, ok := e.param(ParamSource); ok && p.String != nil && *p.String != "" {
		o.Source = *p.String
	}
	if p, ok := e.param(ParamValuesFiles); ok {
		for _, f := range p.Array {
			if filepath.IsAbs(f) {
				return Options{}, fmt.Errorf("parameter %s: %q must be relative to the application path", ParamValuesFiles, f)
			}
		}
		o.Helm.ValuesFiles = p.Array
	}
	if p, ok := e.param(ParamValues); ok && p.String != nil {
		o.Helm.Values = *p.String
	}
	for _, pair := range []struct {
		name string
		dst  *[]string
	}{{ParamSet, &o.Helm.Set}, {ParamSetString, &o.Helm.SetString}} {
		if p, ok := e.param(pair.name); ok {
			keys := make([]string, 0, len(p.Map))
			for k := range p.Map {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if strings.ContainsAny(k, "=") {
					return Options{}, fmt.Errorf("parameter %s: key %q may not contain '='", pair.name, k)
				}
				*pair.dst = append(*pair.dst, k+"="+p.Map[k])
			}
		}
	}
	if p, ok := e.param(ParamSkipCRDs); ok && p.String != nil && *p.String != "" {
		b, err := strconv.ParseBool(*p.String)
		if err != nil {
			return Options{}, fmt.Errorf("parameter %s: %q is not true or false", ParamSkipCRDs, *p.String)
		}
		o.Helm.SkipCRDs = b
	}
	return o, nil
}

// RepoRoot returns the repository checkout holding the application at appDir: Argo CD sets
// the working directory to the application path inside a copy of the repository.
func (e Env) RepoRoot(appDir string) (string, error) {
	abs, err := filepath.Abs(appDir)
	if err != nil {
		return "", err
	}
	sp := filepath.Clean(e.SourcePath)
	if e.SourcePath == "" || sp == "." {
		return abs, nil
	}
	if filepath.IsAbs(sp) || sp == ".." || strings.HasPrefix(sp, "../") {
		return "", fmt.Errorf("ARGOCD_APP_SOURCE_PATH %q leaves the repository", e.SourcePath)
	}
	root, ok := strings.CutSuffix(abs, string(filepath.Separator)+sp)
	if !ok {
		return abs, nil
	}
	return root, nil
}

// Policy is the sidecar operator's say over what Applications may change.
type Policy struct {
	// AllowEnv lists the environment names (without ARGOCD_ENV_) an Application may set,
	// such as VAULT_NAMESPACE. Everything that steers keyway is refused otherwise.
	AllowEnv []string
	// ProjectPaths maps an Argo CD project to the secret paths its Applications may
	// reference: "PREFIX" for any backend or "BACKEND:PREFIX". "*" applies to projects
	// without an entry. Empty means no path policy.
	ProjectPaths map[string][]string
}

// steering are the environment prefixes that select or configure a backend.
var steering = []string{"KEYWAY_", "AVP_", "VAULT_", "AWS_", "GOOGLE_", "GCP_", "CLOUDSDK_"}

// Overlay returns an environment lookup where allowed Application entries override base, or
// an error naming the first Application entry that tries to steer keyway without permission.
func (p Policy) Overlay(e Env, base func(string) (string, bool)) (func(string) (string, bool), error) {
	allowed := map[string]string{}
	names := make([]string, 0, len(e.AppEnv))
	for k := range e.AppEnv {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		steers := false
		for _, pre := range steering {
			steers = steers || strings.HasPrefix(k, pre)
		}
		if !steers {
			continue // not keyway's business
		}
		if !slices.Contains(p.AllowEnv, k) {
			return nil, fmt.Errorf("%s%s: the application may not set %s; the keyway sidecar's configuration must allow it (argocd-allow-env)", EnvPrefix, k, k)
		}
		allowed[k] = e.AppEnv[k]
	}
	return func(k string) (string, bool) {
		if v, ok := allowed[k]; ok {
			return v, true
		}
		return base(k)
	}, nil
}

// RefCheck returns the check a render applies to every reference under project, or nil
// when there is no path policy.
func (p Policy) RefCheck(project string) func(providers.Ref) error {
	if len(p.ProjectPaths) == 0 {
		return nil
	}
	prefixes, ok := p.ProjectPaths[project]
	if !ok {
		prefixes = p.ProjectPaths["*"]
	}
	return func(ref providers.Ref) error {
		// Paths reach here canonical (the grammar refuses "..", "//" and escapes); checked
		// again so that no other caller can hand the policy a path a backend would clean.
		if ref.Backend != "file" {
			if err := reference.CheckPath(ref.Path); err != nil {
				return fmt.Errorf("%w: %s:%s is not a canonical secret path: %v", providers.ErrPermissionDenied, ref.Backend, ref.Path, err)
			}
		}
		for _, pre := range prefixes {
			backend, prefix, scoped := strings.Cut(pre, ":")
			if !scoped {
				backend, prefix = "", pre
			}
			if (backend == "" || backend == ref.Backend) && reference.HasPathPrefix(ref.Path, prefix) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s:%s is outside the paths Argo CD project %q may read", providers.ErrPermissionDenied, ref.Backend, ref.Path, project)
	}
}
