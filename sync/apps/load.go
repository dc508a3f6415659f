package apps

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// Manifests are the operator's Applications, AppProjects and ApplicationSets.
type Manifests struct {
	Apps     []*v1alpha1.Application
	Projects []*v1alpha1.AppProject
	Sets     []*v1alpha1.ApplicationSet
}

// Load reads Application, AppProject and ApplicationSet manifests from files and
// directories (*.yaml, *.yml, *.json, not recursive), refusing any other kind in them. These
// are the operator's: only projects given here count. Errors name the path as given, after
// "--app".
func Load(paths []string) (Manifests, error) {
	var m Manifests
	for _, p := range paths {
		files, err := appFiles(p)
		if err != nil {
			return Manifests{}, fmt.Errorf("--app %s: %w", p, err)
		}
		for _, f := range files {
			if err := m.read(f); err != nil {
				return Manifests{}, fmt.Errorf("--app %s: %w", f, err)
			}
		}
	}
	if len(m.Apps) == 0 && len(m.Sets) == 0 {
		return Manifests{}, fmt.Errorf("--app %s: no Application or ApplicationSet manifests found", strings.Join(paths, ", "))
	}
	return m, nil
}

// appFiles is p itself, or the manifest files directly in the directory p.
func appFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
	}
	return files, nil
}

func (m *Manifests) read(file string) error {
	r, err := os.Open(file)
	if err != nil {
		return err
	}
	docs, err := manifest.Read(r, file, manifest.Limits{})
	r.Close()
	if err != nil {
		return err
	}
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		v, err := manifest.ToJSON(d.Root)
		if err != nil {
			return fmt.Errorf("document %d: %w", d.Index, err)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("document %d: %w", d.Index, err)
		}
		switch kind := manifest.String(d.Root, "kind"); kind {
		case v1alpha1.ProjectKind:
			p, err := v1alpha1.DecodeAppProject(raw)
			if err != nil {
				return fmt.Errorf("document %d: %w", d.Index, err)
			}
			m.Projects = append(m.Projects, p)
		case v1alpha1.SetKind:
			set, err := v1alpha1.DecodeApplicationSet(raw)
			if err != nil {
				return fmt.Errorf("document %d: %w", d.Index, err)
			}
			m.Sets = append(m.Sets, set)
		case v1alpha1.Kind:
			app, err := v1alpha1.DecodeApplication(raw)
			if err != nil {
				return fmt.Errorf("document %d: %w", d.Index, err)
			}
			m.Apps = append(m.Apps, app)
		default:
			return fmt.Errorf("document %d: kind %q: want Application, AppProject or ApplicationSet", d.Index, kind)
		}
	}
	return nil
}
