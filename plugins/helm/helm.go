// Package helm renders a Helm chart in process with the Helm SDK, the way `helm template`
// does, without network access: dependencies must be vendored in charts/. Values files must
// lie inside the render root, so an application cannot read files outside its repository.
package helm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// Options are the structured Helm settings; there is no free-form flag string.
type Options struct {
	ReleaseName string   // default: the chart's name
	Namespace   string   // default: "default"
	ValuesFiles []string // relative to the chart directory, or absolute inside Root
	Values      string   // inline values YAML, merged after the files
	Set         []string // key=value pairs (Helm's --set syntax), applied last
	SetString   []string // key=value pairs kept as strings
	SkipCRDs    bool
	SkipTests   bool
	KubeVersion string   // e.g. "1.31.0"; default Helm's built-in
	APIVersions []string // extra Capabilities.APIVersions
	// Root confines values files; default the chart directory.
	Root string
}

// IsChart reports whether dir holds a Chart.yaml.
func IsChart(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "Chart.yaml"))
	return err == nil && fi.Mode().IsRegular()
}

// Render renders the chart in dir and returns the manifests as one YAML stream: CRDs (unless
// skipped), templates in Helm's install order, then hooks by weight, as `helm template` prints
// them. It uses Helm's template engine directly rather than the install action, which keeps
// Helm's cluster client (and its start-up cost) out of the process.
func Render(dir string, o Options) ([]byte, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	if err := checkDependencies(ch); err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	vals, err := values(dir, o)
	if err != nil {
		return nil, err
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	name := o.ReleaseName
	if name == "" {
		name = ch.Name()
	}
	ns := o.Namespace
	if ns == "" {
		ns = "default"
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version %q: %w", o.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	caps.APIVersions = append(caps.APIVersions, o.APIVersions...)
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("helm chart %s requires kubeVersion %s, incompatible with Kubernetes %s", dir, ch.Metadata.KubeVersion, caps.KubeVersion.String())
	}
	renderVals, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: name, Namespace: ns, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	files, err := engine.Render(ch, renderVals)
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w", dir, err)
	}
	for k := range files {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(files, k)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w", dir, err)
	}
	var out bytes.Buffer
	if !o.SkipCRDs {
		for _, crd := range ch.CRDObjects() {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", crd.Filename, bytes.TrimSpace(crd.File.Data))
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.Name, strings.TrimSpace(m.Content))
	}
	sort.SliceStable(hooks, func(i, j int) bool { return hooks[i].Weight < hooks[j].Weight })
	for _, h := range hooks {
		if o.SkipTests && isTestHook(h.Path) {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", h.Path, strings.TrimSpace(h.Manifest))
	}
	return out.Bytes(), nil
}

func isTestHook(path string) bool {
	return strings.Contains(path, "/tests/")
}

// checkDependencies refuses a chart whose dependencies are not vendored, since keyway never
// downloads charts.
func checkDependencies(ch *chart.Chart) error {
	if ch.Metadata == nil || len(ch.Metadata.Dependencies) == 0 {
		return nil
	}
	var missing []string
	for _, dep := range ch.Metadata.Dependencies {
		found := false
		for _, sub := range ch.Dependencies() {
			found = found || sub.Name() == dep.Name
		}
		if !found {
			missing = append(missing, dep.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dependencies %s are not in charts/ (keyway renders without network access: vendor them with `helm dependency build`)", strings.Join(missing, ", "))
	}
	return nil
}

func values(dir string, o Options) (map[string]any, error) {
	root := o.Root
	if root == "" {
		root = dir
	}
	base := map[string]any{}
	for _, f := range o.ValuesFiles {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		p, err := confine(root, p)
		if err != nil {
			return nil, fmt.Errorf("values file %q: %w", f, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("values file %q: %w", f, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("values file %q: %w", f, err)
		}
		base = chartutil.CoalesceTables(m, base)
	}
	if strings.TrimSpace(o.Values) != "" {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(o.Values), &m); err != nil {
			return nil, fmt.Errorf("inline values: %w", err)
		}
		base = chartutil.CoalesceTables(m, base)
	}
	for _, kv := range o.Set {
		if err := strvals.ParseInto(kv, base); err != nil {
			return nil, fmt.Errorf("set %q: %w", kv, err)
		}
	}
	for _, kv := range o.SetString {
		if err := strvals.ParseIntoString(kv, base); err != nil {
			return nil, fmt.Errorf("set-string %q: %w", kv, err)
		}
	}
	return base, nil
}

// confine resolves symbolic links and refuses a path outside root.
func confine(root, p string) (string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if p, err = filepath.Abs(p); err != nil {
		return "", err
	}
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("does not exist")
		}
		return "", err
	}
	rel, err := filepath.Rel(rootReal, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", errors.New("is outside the repository")
	}
	return real, nil
}
