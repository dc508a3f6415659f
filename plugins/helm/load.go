package helm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/ignore"

	"github.com/keyway-dev/keyway/internal/confine"
)

// loadChart reads the chart at rel inside root the way Helm's loader.LoadDir does
// (.helmignore, the default ignores, a byte-order mark dropped) but through the os.Root: a
// symbolic link, however chained, that leads outside the root is refused, not followed, so
// neither .Files.Get nor a linked subchart reads the sidecar's own files. maxBytes bounds
// the chart's files in all.
func loadChart(root *os.Root, rel string, maxBytes int64) (*chart.Chart, error) {
	rules := ignore.Empty()
	if data, err := root.ReadFile(path.Join(rel, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	rules.AddDefaults()
	l := chartLoader{root: root, rules: rules, budget: maxBytes}
	if err := l.walk(rel, "", 0); err != nil {
		return nil, err
	}
	return loader.LoadFiles(l.files)
}

// openWithin opens root (default dir) and returns dir's path inside it, refusing a dir
// outside root.
func openWithin(root, dir string) (*os.Root, string, error) {
	if root == "" {
		root = dir
	}
	rel, ok := confine.Rel(root, dir)
	if !ok {
		return nil, "", errors.New("the chart is outside the repository")
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, "", err
	}
	return r, filepath.ToSlash(rel), nil
}

// readWithin reads file p (relative to dir, or absolute) through root, whose directory is
// rootDir: a path or a link that leaves it is refused.
func readWithin(root *os.Root, rootDir, dir, p string) ([]byte, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	rel, ok := confine.Rel(rootDir, p)
	if !ok {
		return nil, errors.New("is outside the repository")
	}
	data, err := root.ReadFile(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("does not exist")
	}
	return data, err
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
