package render

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/providers"
)

// confineFile resolves a ref+file:// path against the manifest's directory and refuses one that
// leaves the render root, following symbolic links.
func confineFile(d *manifest.Document, p string) (string, error) {
	dir, root, orig := d.Dir, d.Confine, p
	if dir == "" {
		dir = "."
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if root == "" {
		root = dir
	}
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if !within(abs, rootAbs) {
		return "", fmt.Errorf("file %q is outside the render root", orig)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: file %q does not exist", providers.ErrNotFound, orig)
		}
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(rootAbs)
	if err != nil {
		return "", err
	}
	if !within(real, realRoot) {
		return "", fmt.Errorf("file %q links outside the render root", orig)
	}
	return real, nil
}

func within(path, root string) bool {
	_, ok := confine.Rel(root, path)
	return ok
}
