// Package helm renders a Helm chart in process with the Helm SDK, the way `helm template`
// does, without network access: dependencies must be vendored in charts/. The chart's files,
// its subcharts and values files are read through an os.Root at the render root, so neither
// a path nor a symbolic link lets an application read files outside its repository.
package helm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
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
	// Root is the directory the chart, its subcharts and values files are read through
	// (an os.Root, so no path or link leaves it); default the chart directory.
	Root string
}

// IsChart reports whether the directory dir holds a Chart.yaml, a regular file (through an
// os.Root's FS, a link that leaves it is not).
func IsChart(dir fs.FS) bool {
	fi, err := fs.Stat(dir, "Chart.yaml")
	return err == nil && fi.Mode().IsRegular()
}

// Render renders the chart in dir the way `helm template --include-crds` does and returns its
// documents parsed: CRDs (unless skipped), then the templates' manifests in Helm's install
// order (by kind, stable), then hooks by kind (test hooks left out with SkipTests). Each
// document's text starts with Helm's "# Source:" comment.
//
// It uses Helm's template engine directly rather than the install action, which keeps Helm's
// cluster client out of the process, and it orders documents from the one parse keyway needs
// anyway instead of Helm's sorter, which parses every document a second time (through JSON)
// to read its kind and annotations: that parse was half the CPU of a render.
//
// each, when not nil, is called for every document that will be output as soon as it is
// parsed, concurrently (see manifest.ReadFunc).
func Render(dir string, o Options, limits manifest.Limits, each func(*manifest.Document)) ([]*manifest.Document, error) {
	root, rel, err := openWithin(o.Root, dir)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	defer root.Close()
	ch, err := loadChart(root, rel, limits.WithDefaults().MaxStreamBytes)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	if err := checkDependencies(ch); err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", dir, err)
	}
	vals, err := values(root, dir, o)
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
	var outputs []output
	if !o.SkipCRDs {
		for _, crd := range ch.CRDObjects() {
			outputs = append(outputs, output{name: crd.Filename, crd: true, docs: []string{string(bytes.TrimSpace(crd.File.Data))}})
		}
	}
	// The templates in name order, each cut into documents as Helm cuts them; partials,
	// notes and empty output are not manifests.
	names := make([]string, 0, len(files))
	for n, content := range files {
		if strings.HasPrefix(path.Base(n), "_") || strings.HasSuffix(n, "NOTES.txt") || strings.TrimSpace(content) == "" {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		outputs = append(outputs, output{name: n, docs: splitManifests(files[n])})
	}
	return parse(dir, outputs, o.SkipTests, limits, each)
}

// output is one file of the render: a CRD or a template's documents.
type output struct {
	name string
	crd  bool
	docs []string
}

// parsed is a document with what ordering needs to know of it.
type parsed struct {
	doc  *manifest.Document
	head head
	hook bool
	crd  bool
}

// parse parses every file of the render, concurrently, and orders the documents.
func parse(dir string, outputs []output, skipTests bool, limits manifest.Limits, each func(*manifest.Document)) ([]*manifest.Document, error) {
	var total int64
	texts := make([][]byte, len(outputs))
	for i, f := range outputs {
		var b bytes.Buffer
		for _, d := range f.docs {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", f.name, d)
		}
		texts[i] = b.Bytes()
		total += int64(b.Len())
	}
	if limit := limits.WithDefaults().MaxStreamBytes; total > limit {
		return nil, fmt.Errorf("helm template %s: output is larger than %d bytes", dir, limit)
	}
	results := make([][]parsed, len(outputs))
	errs := make([]error, len(outputs))
	parallel.For(len(outputs), func(i int) {
		results[i], errs[i] = parseOutput(dir, outputs[i], texts[i], skipTests, limits, each)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var crds, manifests, hooks []parsed
	for _, r := range results {
		for _, p := range r {
			switch {
			case p.crd:
				crds = append(crds, p)
			case p.hook:
				hooks = append(hooks, p)
			default:
				manifests = append(manifests, p)
			}
		}
	}
	byKind(manifests)
	byKind(hooks)
	out := make([]*manifest.Document, 0, len(crds)+len(manifests)+len(hooks))
	for _, group := range [][]parsed{crds, manifests, hooks} {
		for _, p := range group {
			out = append(out, p.doc)
		}
	}
	return out, nil
}

// parseOutput parses one file's documents and decides which of them are output: hooks of
// an unknown type are dropped, as Helm drops them, and test hooks when skipTests is set.
func parseOutput(dir string, f output, text []byte, skipTests bool, limits manifest.Limits, each func(*manifest.Document)) ([]parsed, error) {
	source := f.name + " (helm template " + dir + ")"
	var mu sync.Mutex
	var firstErr error
	keep := map[*manifest.Document]parsed{}
	docs, err := manifest.ReadFunc(bytes.NewReader(text), source, limits, func(d *manifest.Document) {
		p := parsed{doc: d, crd: f.crd}
		ok := true
		var err error
		if !f.crd {
			p.head, err = readHead(d.Root)
			if err != nil {
				err = &manifest.Error{Source: source, Index: d.Index, Line: d.Root.Line, Msg: "cannot read its kind and metadata: " + err.Error()}
			} else {
				p.hook, ok = p.head.hook(skipTests)
			}
		}
		mu.Lock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if ok && err == nil {
			keep[d] = p
		}
		mu.Unlock()
		if ok && err == nil && each != nil {
			each(d)
		}
	})
	if err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	out := make([]parsed, 0, len(docs))
	for _, d := range docs {
		if p, ok := keep[d]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// head is what Helm reads of a manifest to order it: its kind and annotations.
type head struct {
	kind        string
	annotations map[string]string
}

// hook reports whether the document is a Helm hook, and whether it is output at all.
func (h head) hook(skipTests bool) (isHook, keep bool) {
	types, ok := h.annotations[release.HookAnnotation]
	if !ok {
		return false, true
	}
	test := false
	for _, t := range strings.Split(types, ",") {
		t = strings.ToLower(strings.TrimSpace(t))
		if !hookEvents[t] {
			return true, false // Helm skips a hook of an unknown type
		}
		test = test || t == string(release.HookTest) || t == "test-success"
	}
	return true, !(skipTests && test)
}

// hookEvents are the hook types Helm knows; "test-success" is Helm 2's name for test.
var hookEvents = func() map[string]bool {
	m := map[string]bool{"test-success": true}
	for _, e := range []release.HookEvent{
		release.HookPreInstall, release.HookPostInstall, release.HookPreDelete, release.HookPostDelete,
		release.HookPreUpgrade, release.HookPostUpgrade, release.HookPreRollback, release.HookPostRollback,
		release.HookTest,
	} {
		m[e.String()] = true
	}
	return m
}()

// readHead reads kind and metadata.annotations the way Helm's sorter does (through
// sigs.k8s.io/yaml): a scalar reads as its text whatever its type, null as empty, and a
// mapping or sequence where a string belongs is an error.
func readHead(root *yaml.Node) (head, error) {
	var h head
	if root.Kind != yaml.MappingNode {
		return h, errors.New("the document is not a mapping")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, deref(root.Content[i+1])
		var err error
		switch k {
		case "kind", "apiVersion":
			var s string
			s, err = text(v)
			if k == "kind" {
				h.kind = s
			}
		case "metadata":
			h.annotations, err = readMetadata(v)
		}
		if err != nil {
			return h, fmt.Errorf("%s: %w", k, err)
		}
	}
	return h, nil
}

func readMetadata(n *yaml.Node) (map[string]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	var annotations map[string]string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, deref(n.Content[i+1])
		switch k {
		case "name":
			if _, err := text(v); err != nil {
				return nil, fmt.Errorf("name: %w", err)
			}
		case "annotations":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return nil, errors.New("annotations: not a mapping")
			}
			annotations = make(map[string]string, len(v.Content)/2)
			for j := 0; j+1 < len(v.Content); j += 2 {
				s, err := text(deref(v.Content[j+1]))
				if err != nil {
					return nil, fmt.Errorf("annotations: %s: %w", v.Content[j].Value, err)
				}
				annotations[v.Content[j].Value] = s
			}
		}
	}
	return annotations, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func text(n *yaml.Node) (string, error) {
	switch {
	case isNull(n):
		return "", nil
	case n.Kind == yaml.ScalarNode:
		return n.Value, nil
	case n.Kind == yaml.MappingNode:
		return "", errors.New("is a mapping, want a string")
	default:
		return "", errors.New("is a sequence, want a string")
	}
}

// installRank is Helm's install order: known kinds by their rank, unknown kinds after them.
var installRank = func() map[string]int {
	m := make(map[string]int, len(releaseutil.InstallOrder))
	for i, k := range releaseutil.InstallOrder {
		m[k] = i
	}
	return m
}()

// byKind sorts as Helm's sorter does: known kinds in install order, then unknown kinds
// alphabetically; documents of equal rank keep their order.
func byKind(ps []parsed) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].head.kind, ps[j].head.kind
		ra, aok := installRank[a]
		rb, bok := installRank[b]
		switch {
		case !aok && !bok:
			return a < b
		case !aok:
			return false
		case !bok:
			return true
		}
		return ra < rb
	})
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

func values(root *os.Root, dir string, o Options) (map[string]any, error) {
	rootDir := o.Root
	if rootDir == "" {
		rootDir = dir
	}
	base := map[string]any{}
	for _, f := range o.ValuesFiles {
		data, err := readWithin(root, rootDir, dir, f)
		if err != nil {
			return nil, fmt.Errorf("values file %q: %w", f, err)
		}
		var m map[string]any
		if err := sigsyaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("values file %q: %w", f, err)
		}
		base = chartutil.CoalesceTables(m, base)
	}
	if strings.TrimSpace(o.Values) != "" {
		var m map[string]any
		if err := sigsyaml.Unmarshal([]byte(o.Values), &m); err != nil {
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
