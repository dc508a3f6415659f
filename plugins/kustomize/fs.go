package kustomize

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/keyway-dev/keyway/internal/confine"
)

// ErrOutside is returned for a path outside the checkout; wrapping keeps it.
var ErrOutside = errors.New("is outside the repository")

// errReadOnly is returned by every write: a build only reads.
var errReadOnly = errors.New("keyway's kustomize file system is read-only")

// rootFS is a read-only filesys.FileSystem that knows only the files under one directory.
// Every access goes through an os.Root, so neither a path with ".." nor a symbolic link
// (however chained) reaches a file outside it, and kustomize's own load restrictions no
// longer have to hold on their own. Paths are absolute, as kustomize uses them, and must
// lie under dir.
type rootFS struct {
	root   *os.Root
	dir    string // absolute, symbolic links resolved
	budget atomic.Int64
}

// newRootFS opens dir; maxBytes bounds what one build may read in all (0: no bound).
func newRootFS(dir string, maxBytes int64) (*rootFS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, err
	}
	f := &rootFS{root: root, dir: real}
	if maxBytes <= 0 {
		maxBytes = 1 << 62
	}
	f.budget.Store(maxBytes)
	return f, nil
}

func (f *rootFS) Close() error { return f.root.Close() }

// rel maps an absolute (or working-directory relative) path to one relative to the root.
func (f *rootFS) rel(name string) (string, error) {
	rel, ok := confine.Rel(f.dir, name)
	if !ok {
		return "", &fs.PathError{Op: "open", Path: name, Err: ErrOutside}
	}
	return rel, nil
}

func (f *rootFS) stat(name string) (fs.FileInfo, error) {
	rel, err := f.rel(name)
	if err != nil {
		return nil, err
	}
	return f.root.Stat(rel)
}

func (f *rootFS) Create(string) (filesys.File, error) { return nil, errReadOnly }
func (f *rootFS) Mkdir(string) error                  { return errReadOnly }
func (f *rootFS) MkdirAll(string) error               { return errReadOnly }
func (f *rootFS) RemoveAll(string) error              { return errReadOnly }
func (f *rootFS) WriteFile(string, []byte) error      { return errReadOnly }

func (f *rootFS) Open(name string) (filesys.File, error) {
	rel, err := f.rel(name)
	if err != nil {
		return nil, err
	}
	return f.root.Open(rel)
}

func (f *rootFS) IsDir(name string) bool {
	fi, err := f.stat(name)
	return err == nil && fi.IsDir()
}

func (f *rootFS) Exists(name string) bool {
	_, err := f.stat(name)
	return err == nil
}

func (f *rootFS) ReadDir(name string) ([]string, error) {
	rel, err := f.rel(name)
	if err != nil {
		return nil, err
	}
	ents, err := fs.ReadDir(f.root.FS(), filepath.ToSlash(rel))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}

// CleanedAbs splits a path into its directory and file name as kustomize's on-disk file
// system does, without resolving links itself: the root resolves them on every access.
func (f *rootFS) CleanedAbs(name string) (filesys.ConfirmedDir, string, error) {
	rel, err := f.rel(name)
	if err != nil {
		return "", "", err
	}
	fi, err := f.root.Stat(rel)
	if err != nil {
		return "", "", err
	}
	abs := filepath.Join(f.dir, rel)
	if fi.IsDir() {
		return filesys.ConfirmedDir(abs), "", nil
	}
	return filesys.ConfirmedDir(filepath.Dir(abs)), filepath.Base(abs), nil
}

func (f *rootFS) Glob(pattern string) ([]string, error) {
	rel, err := f.rel(pattern)
	if err != nil {
		return nil, err
	}
	matches, err := fs.Glob(f.root.FS(), filepath.ToSlash(rel))
	if err != nil {
		return nil, err
	}
	for i, m := range matches {
		matches[i] = filepath.Join(f.dir, filepath.FromSlash(m))
	}
	if filesys.IsHiddenFilePath(pattern) {
		return matches, nil
	}
	return filesys.RemoveHiddenFiles(matches), nil
}

// ReadFile reads a regular file, charging it to the build's byte budget.
func (f *rootFS) ReadFile(name string) ([]byte, error) {
	rel, err := f.rel(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.root.Stat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	if f.budget.Add(-fi.Size()) < 0 {
		return nil, fmt.Errorf("%s: the kustomization reads more than its input limit", name)
	}
	return f.root.ReadFile(rel)
}

func (f *rootFS) Walk(name string, walkFn filepath.WalkFunc) error {
	rel, err := f.rel(name)
	if err != nil {
		return err
	}
	return fs.WalkDir(f.root.FS(), filepath.ToSlash(rel), func(p string, d fs.DirEntry, err error) error {
		abs := filepath.Join(f.dir, filepath.FromSlash(p))
		if err != nil {
			return walkFn(abs, nil, err)
		}
		fi, err := d.Info()
		return walkFn(abs, fi, err)
	})
}
