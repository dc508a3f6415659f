package render

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyway-dev/keyway/internal/manifest"
)

// Load reads the documents of every path in order: "-" is stdin, a file is read as is, a
// directory is walked recursively for .yaml, .yml and .json files in sorted order (hidden
// directories skipped). Files are opened through an os.Root, so a symbolic link cannot lead
// a walk outside the directory it started from. References to files (ref+file://) in a
// document resolve against that document's directory and may not leave the directory the
// path named (the current directory for stdin).
func Load(paths []string, stdin io.Reader, limits manifest.Limits) ([]*manifest.Document, error) {
	var docs []*manifest.Document
	stdinUsed := false
	for _, p := range paths {
		switch {
		case p == "-":
			if stdinUsed {
				return nil, errors.New(`"-" (stdin) given more than once`)
			}
			stdinUsed = true
			cwd, err := os.Getwd()
			if err != nil {
				return nil, err
			}
			ds, err := manifest.Read(stdin, "<stdin>", limits)
			if err != nil {
				return nil, err
			}
			docs = append(docs, located(ds, cwd, cwd)...)
		default:
			ds, err := loadPath(p, limits)
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		}
	}
	return docs, nil
}

func loadPath(p string, limits manifest.Limits) ([]*manifest.Document, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ds, err := manifest.Read(f, p, limits)
		if err != nil {
			return nil, err
		}
		dir := filepath.Dir(p)
		return located(ds, dir, dir), nil
	}
	root, err := os.OpenRoot(p)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var docs []*manifest.Document
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(rel)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		f, err := root.Open(rel)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(p, rel), err)
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", filepath.Join(p, rel))
		}
		name := filepath.Join(p, rel)
		ds, err := manifest.Read(f, name, limits)
		if err != nil {
			return err
		}
		docs = append(docs, located(ds, filepath.Dir(name), p)...)
		return nil
	})
	return docs, err
}

func located(ds []*manifest.Document, dir, confine string) []*manifest.Document {
	for _, d := range ds {
		d.Dir, d.Confine = dir, confine
	}
	return ds
}
