// Package confine is the one lexical test of whether a path lies under a root directory.
// It resolves no links: callers then read through an os.Root opened at that root, which
// refuses any link that leads out, so the two together confine by construction.
package confine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Rel returns p relative to root, both made absolute and cleaned, and whether p is root
// itself or lies under it.
func Rel(root, p string) (string, bool) {
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return "", false
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(rootAbs, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// Open opens p, a directory or file that must lie under root, through an os.Root at root:
// neither ".." nor a symbolic link anywhere on the way (the last part included) can lead
// out of it. A directory comes back as an *os.Root of its own, a file as an *os.File; the
// caller closes what it gets.
func Open(root, p string) (dir *os.Root, file *os.File, err error) {
	rel, ok := Rel(root, p)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", p, ErrOutside)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	fi, err := r.Stat(rel)
	if err != nil {
		return nil, nil, translate(p, err)
	}
	if fi.IsDir() {
		dir, err = r.OpenRoot(rel)
		return dir, nil, translate(p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", p)
	}
	file, err = r.Open(rel)
	return nil, file, translate(p, err)
}

// ErrOutside is the error of a path or link that leads out of its root.
var ErrOutside = errors.New("leads outside the repository")

func translate(p string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes from parent") {
		return fmt.Errorf("%s: %w", p, ErrOutside)
	}
	return err
}
