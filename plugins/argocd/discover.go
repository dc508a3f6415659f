package argocd

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyway-dev/keyway/internal/reference"
)

// Discovery bounds: how many candidate files are read, and how large one may be.
const (
	discoverMaxFiles = 2000
	discoverMaxBytes = 1 << 20
)

// FindReference returns the first YAML, JSON or Helm template file under dir (relative to
// it) that uses secret references, or "" when none does: the plugin's discovery. It reads
// only inside dir (through os.Root, links out are not followed), skips hidden directories,
// and looks at no more than 2,000 files of at most 1 MiB each.
func FindReference(dir string) (string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	seen := 0
	var found string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json", ".tpl":
		default:
			return nil
		}
		if seen++; seen > discoverMaxFiles {
			return fs.SkipAll
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > discoverMaxBytes {
			return nil
		}
		data, err := fs.ReadFile(root.FS(), p)
		if err == nil && reference.Mentions(data) {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found, err
}

// Announcement is one parameter the plugin announces to Argo CD's UI, in the JSON form of
// a CMP's dynamic parameters command.
type Announcement struct {
	Name           string            `json:"name"`
	Title          string            `json:"title"`
	Tooltip        string            `json:"tooltip,omitempty"`
	CollectionType string            `json:"collectionType,omitempty"`
	String         string            `json:"string,omitempty"`
	Array          []string          `json:"array,omitempty"`
	Map            map[string]string `json:"map,omitempty"`
}

// Parameters announces the parameters generate reads from ARGOCD_APP_PARAMETERS, with the
// values files found in the application's directory offered by name.
func Parameters(dir string) []Announcement {
	var files []string
	matches, _ := filepath.Glob(filepath.Join(dir, "values*.y*ml"))
	for _, m := range matches {
		files = append(files, filepath.Base(m))
	}
	return []Announcement{
		{Name: "values-files", Title: "Helm values files", Tooltip: "inside the application path; found: " + strings.Join(files, ", "), CollectionType: "array", Array: files},
		{Name: "set", Title: "Helm values (--set)", CollectionType: "map", Map: map[string]string{}},
		{Name: "values", Title: "Inline Helm values (YAML)", CollectionType: "string"},
		{Name: "release-name", Title: "Helm release name", Tooltip: "default: the Application's name", CollectionType: "string"},
		{Name: "skip-crds", Title: "Skip the chart's CRDs", CollectionType: "string", String: "false"},
		{Name: "source", Title: "Source kind", Tooltip: "auto, plain, helm or kustomize", CollectionType: "string", String: "auto"},
	}
}
