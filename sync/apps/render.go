package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/plugins/kustomize"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// renderCache is an application's last successful render.
type renderCache struct {
	revision string
	spec     string // the Application's spec it was rendered for, as JSON
	docs     []*manifest.Document
	inputs   []Input
}

// lastRender is the application's last successful render for its Application as it is
// now, or nil.
func (d *Daemon) lastRender(a *v1alpha1.Application) *renderCache {
	spec, _ := json.Marshal(a.Spec)
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.renders[a.Name]; c != nil && c.spec == string(spec) {
		return c
	}
	return nil
}

// renderApp renders the application at dir inside the checkout root, and returns the
// secrets the render read. A poll reuses the last render when the revision, the
// Application and every secret it read are unchanged.
func (d *Daemon) renderApp(ctx context.Context, a *v1alpha1.Application, root, dir, revision string, t Trigger) ([]*manifest.Document, []Input, error) {
	src, _, err := confine.Open(root, dir)
	if errors.Is(err, confine.ErrOutside) {
		return nil, nil, fmt.Errorf("spec.source.path %q leads outside the repository (through '..' or a symbolic link)", a.Spec.Source.Path)
	}
	if err != nil || src == nil {
		return nil, nil, fmt.Errorf("spec.source.path %q: no such directory in the repository", a.Spec.Source.Path)
	}
	defer src.Close()
	kubeVersion, apiVersions := d.caps.get()
	req, err := renderRequest(a, root, dir, src, buildEnv(a, revision, kubeVersion, apiVersions))
	if err != nil {
		return nil, nil, err
	}
	if req.Source == "helm" {
		// .Capabilities of the destination cluster, as Argo CD gives Helm, unless the
		// Application sets its own.
		if req.Helm.KubeVersion == "" {
			req.Helm.KubeVersion = kubeVersion
		}
		if len(req.Helm.APIVersions) == 0 {
			req.Helm.APIVersions = apiVersions
		}
	}
	spec, _ := json.Marshal(a.Spec)
	d.mu.Lock()
	c := d.renders[a.Name]
	d.mu.Unlock()
	var unread error
	if t == Poll && d.o.Inputs != nil && c != nil && c.revision == revision && c.spec == string(spec) {
		changed, err := d.inputsChanged(ctx, req, c.inputs)
		if err == nil && !changed {
			d.m.renders.WithLabelValues("reused").Inc()
			return c.docs, c.inputs, nil
		}
		if errors.Is(err, providers.ErrUnavailable) {
			unread = err // a backend down: see below
		}
	}
	docs, inputs, err := d.o.Render(ctx, req)
	if err != nil {
		if unread != nil {
			// The secrets could not be read again (a backend down), and the render that
			// needs them fails the same way: the last render of this revision and
			// Application still says what the cluster should hold, so drift is compared
			// with it (and reverted); the status says the secrets are unverified.
			d.m.renders.WithLabelValues("reused").Inc()
			return c.docs, c.inputs, &staleSecrets{err: err}
		}
		return nil, nil, err
	}
	d.m.renders.WithLabelValues("rendered").Inc()
	d.mu.Lock()
	d.renders[a.Name] = &renderCache{revision: revision, spec: string(spec), docs: docs, inputs: inputs}
	d.mu.Unlock()
	return docs, inputs, nil
}

// staleSecrets says a render was reused because its secrets could not be read again.
type staleSecrets struct{ err error }

func (e *staleSecrets) Error() string {
	return "the secrets could not be read again (the last render was used): " + e.err.Error()
}

// renderRequest translates the Application's source settings, as Argo CD reads them; src
// is dir opened through the checkout's root. Argo CD's build environment (env) is
// substituted where Argo CD substitutes it: Helm parameter values and value file paths,
// and the plugin's env values.
func renderRequest(a *v1alpha1.Application, root, dir string, src *os.Root, env map[string]string) (RenderRequest, error) {
	source := a.Spec.Source
	req := RenderRequest{App: a, Root: root, Paths: []string{dir}, Source: "auto"}
	if source.Plugin != nil {
		req.Env = map[string]string{}
		for _, e := range source.Plugin.Env {
			req.Env[e.Name] = envsubst(e.Value, env)
		}
	}
	kind := "plain"
	switch {
	case source.Helm != nil:
		kind = "helm"
	case source.Kustomize != nil:
		kind = "kustomize"
	case source.Directory != nil:
		kind = "plain"
	case helm.IsChart(src.FS()):
		kind = "helm"
	case kustomize.IsKustomization(src.FS()):
		kind = "kustomize"
	}
	req.Source = kind
	switch kind {
	case "helm":
		h := source.Helm
		if h == nil {
			h = &v1alpha1.ApplicationSourceHelm{}
		}
		valueFiles := make([]string, 0, len(h.ValueFiles))
		for _, f := range h.ValueFiles {
			valueFiles = append(valueFiles, envsubst(f, env))
		}
		req.Helm = helm.Options{ReleaseName: a.Name, Namespace: a.Spec.Destination.Namespace, ValuesFiles: valueFiles,
			Values: h.Values, SkipCRDs: h.SkipCrds, KubeVersion: strings.TrimPrefix(h.KubeVersion, "v"), APIVersions: h.APIVersions, Root: root}
		if h.ReleaseName != "" {
			req.Helm.ReleaseName = h.ReleaseName
		}
		if h.Namespace != "" {
			req.Helm.Namespace = h.Namespace
		}
		if h.ValuesObject != nil {
			y, err := yaml.JSONToYAML(*h.ValuesObject)
			if err != nil {
				return req, fmt.Errorf("spec.source.helm.valuesObject: %w", err)
			}
			req.Helm.Values = string(y) // Argo CD: valuesObject wins over values
		}
		for _, f := range valueFiles {
			if filepath.IsAbs(f) || strings.Contains(f, "://") {
				return req, fmt.Errorf("spec.source.helm.valueFiles %q: must be a path inside the repository, relative to the chart", f)
			}
		}
		for _, p := range h.Parameters {
			if p.Name == "" || strings.Contains(p.Name, "=") {
				return req, fmt.Errorf("spec.source.helm.parameters: name %q is empty or holds '='", p.Name)
			}
			value := envsubst(p.Value, env)
			if p.ForceString {
				req.Helm.SetString = append(req.Helm.SetString, p.Name+"="+value)
			} else {
				req.Helm.Set = append(req.Helm.Set, p.Name+"="+value)
			}
		}
	case "plain":
		var dirOpts v1alpha1.ApplicationSourceDirectory
		if source.Directory != nil {
			dirOpts = *source.Directory
		}
		files, err := selectFiles(src, dir, dirOpts)
		if err != nil {
			return req, err
		}
		req.Paths = files
	}
	return req, nil
}

// selectFiles lists a directory source's manifests as Argo CD picks them: .yaml, .yml and
// .json files (a .jsonnet file, which Argo CD evaluates, is refused), subdirectories only with recurse, include and exclude as glob patterns
// (with {a,b} alternatives) against the path relative to the source directory. The walk
// goes through src, dir opened under the checkout's root.
func selectFiles(src *os.Root, dir string, o v1alpha1.ApplicationSourceDirectory) ([]string, error) {
	include, exclude := splitGlobs(o.Include), splitGlobs(o.Exclude)
	var files []string
	err := fs.WalkDir(src.FS(), ".", func(rel string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		p := filepath.Join(dir, rel)
		rel = filepath.FromSlash(rel)
		if e.IsDir() {
			if rel != "." && (!o.Recurse || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type()&fs.ModeSymlink != 0 {
			return nil // a link may point anywhere; the renderer would refuse it anyway
		}
		ext := strings.ToLower(filepath.Ext(p))
		switch ext {
		case ".yaml", ".yml", ".json", ".jsonnet":
		default:
			return nil
		}
		if len(include) > 0 && !matchAny(include, rel) {
			return nil
		}
		if matchAny(exclude, rel) {
			return nil
		}
		if ext == ".jsonnet" {
			// Argo CD evaluates a directory's .jsonnet files; leaving them out would
			// deploy less than it does.
			return fmt.Errorf("%s: jsonnet is not supported by keyway: refused rather than ignored (exclude the file with spec.source.directory.exclude if it is not a manifest)", filepath.ToSlash(rel))
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the directory source: %w", err)
	}
	return files, nil
}

// splitGlobs expands "{a.yaml,b/*.yaml}" into its alternatives.
func splitGlobs(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		var out []string
		for _, p := range strings.Split(s[1:len(s)-1], ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	return []string{s}
}

func matchAny(globs []string, rel string) bool {
	rel = filepath.ToSlash(rel)
	for _, g := range globs {
		if ok, _ := filepath.Match(g, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(g, filepath.Base(rel)); ok && !strings.Contains(g, "/") {
			return true
		}
	}
	return false
}
