package helm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/ignore"
)

// loadChart reads the chart in dir the way Helm's loader.LoadDir does (.helmignore, the
// default ignores, a byte-order mark dropped) but through an os.Root opened at root: a
// symbolic link, however chained, that leads outside root is refused, not followed, so
// neither .Files.Get nor a linked subchart reads the sidecar's own files. maxBytes bounds
// the chart's files in all.
func loadChart(dir, root string, maxBytes int64) (*chart.Chart, error) {
	r, rel, err := openWithin(root, dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rules := ignore.Empty()
	if data, err := r.ReadFile(path.Join(rel, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	rules.AddDefaults()
	l := chartLoader{root: r, rules: rules, budget: maxBytes}
	if err := l.walk(rel, "", 0); err != nil {
		return nil, err
	}
	return loader.LoadFiles(l.files)
}

// openWithin opens root and returns dir's path inside it, refusing a dir outside root.
func openWithin(root, dir string) (*os.Root, string, error) {
	if root == "" {
		root = dir
	}
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return nil, "", err
	}
	dirAbs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	rel, err := filepath.Rel(rootAbs, dirAbs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, "", errors.New("the chart is outside the repository")
	}
	r, err := os.OpenRoot(rootAbs)
	if err != nil {
		return nil, "", err
	}
	return r, filepath.ToSlash(rel), nil
}

type chartLoader struct {
	root   *os.Root
	rules  *ignore.Rules
	files  []*loader.BufferedFile
	budget int64
}

// walk reads the directory at dir (a path in the root), whose name in the chart is name.
// Links are followed through the root, which refuses any that leave it.
func (l *chartLoader) walk(dir, name string, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%s: directories nested too deep (a link loop?)", name)
	}
	ents, err := fs.ReadDir(l.root.FS(), dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p, n := path.Join(dir, e.Name()), path.Join(name, e.Name())
		fi, err := l.root.Stat(p) // follows links, inside the root only
		if err != nil {
			if e.Type()&fs.ModeSymlink != 0 {
				return fmt.Errorf("chart file %s: a link that leaves the repository or leads nowhere: %w", n, errors.Unwrap(err))
			}
			return err
		}
		if fi.IsDir() {
			if l.rules.Ignore(n, fi) {
				continue
			}
			if err := l.walk(p, n, depth+1); err != nil {
				return err
			}
			continue
		}
		if l.rules.Ignore(n, fi) {
			continue
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("chart file %s is not a regular file", n)
		}
		if fi.Size() > loader.MaxDecompressedFileSize {
			return fmt.Errorf("chart file %s is larger than %d bytes", n, loader.MaxDecompressedFileSize)
		}
		if l.budget > 0 {
			if l.budget -= fi.Size(); l.budget < 0 {
				return errors.New("the chart's files are larger than the input limit")
			}
		}
		data, err := l.root.ReadFile(p)
		if err != nil {
			return err
		}
		l.files = append(l.files, &loader.BufferedFile{Name: n, Data: bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))})
	}
	return nil
}
