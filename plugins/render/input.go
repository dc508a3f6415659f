package render

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyway-dev/keyway/internal/confine"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/plugins/kustomize"
)

// Load reads the documents of every path in order: "-" is stdin, a file is read as is, a
// directory is walked recursively for .yaml, .yml and .json files in sorted order (hidden
// directories skipped). Files are opened through an os.Root, so a symbolic link cannot lead
// a walk outside the directory it started from. References to files (ref+file://) in a
// document resolve against that document's directory and may not leave the directory the
// path named (the current directory for stdin).
//
// each, when not nil, is called for every document as soon as it is parsed and located,
// concurrently; Session.Add is meant to go there.
func Load(ctx context.Context, paths []string, stdin io.Reader, limits manifest.Limits, each func(*manifest.Document)) ([]*manifest.Document, error) {
	return LoadWith(ctx, paths, stdin, LoadOptions{Limits: limits}, each)
}

// Source kinds for LoadOptions.Source.
const (
	SourceAuto      = "auto"
	SourcePlain     = "plain"
	SourceHelm      = "helm"
	SourceKustomize = "kustomize"
)

// LoadOptions choose how paths are read.
type LoadOptions struct {
	Limits manifest.Limits
	// Source is auto (a directory with Chart.yaml is a Helm chart, one with a kustomization
	// is built with kustomize, anything else is plain YAML), or forces plain, helm or kustomize.
	Source string
	// Helm configures chart rendering; its Root defaults to Root.
	Helm helm.Options
	// Root, when set, is the directory nothing may be read from outside of (an Argo CD
	// repository checkout); by default each path confines itself, except that a
	// kustomization may read the rest of the git work tree it is in (overlays name
	// ../../base).
	Root string
	// Builder builds Helm charts and kustomizations; default InProcess, which is for
	// trusted input only: every entry point that renders a repository sets Isolated.
	Builder Builder
}

// LoadWith is Load with source detection: Helm charts and kustomizations are rendered in
// process first, and references are substituted in what they produce.
func LoadWith(ctx context.Context, paths []string, stdin io.Reader, o LoadOptions, each func(*manifest.Document)) ([]*manifest.Document, error) {
	if o.Source == "" {
		o.Source = SourceAuto
	}
	switch o.Source {
	case SourceAuto, SourcePlain, SourceHelm, SourceKustomize:
	default:
		return nil, fmt.Errorf("source %q: want auto, plain, helm or kustomize", o.Source)
	}
	limits := o.Limits
	var docs []*manifest.Document
	stdinUsed := false
	// The plain files of every path share one budget: a render reads at most
	// MaxStreamBytes of them in all, however many paths or files it is given.
	budget := limits.WithDefaults().MaxStreamBytes
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("render stopped: %w", context.Cause(ctx))
		}
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
			ds, err := manifest.ReadFunc(stdin, "<stdin>", limits, locate(cwd, cwd, each))
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		default:
			ds, err := loadSource(ctx, p, o, &budget, each)
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		}
	}
	return docs, nil
}

func loadSource(ctx context.Context, p string, o LoadOptions, budget *int64, each func(*manifest.Document)) ([]*manifest.Document, error) {
	kind := o.Source
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if kind == SourceAuto {
		kind = SourcePlain
		if fi.IsDir() && helm.IsChart(os.DirFS(p)) {
			kind = SourceHelm
		} else if fi.IsDir() && kustomize.IsKustomization(os.DirFS(p)) {
			kind = SourceKustomize
		}
	}
	confineTo := o.Root
	if confineTo == "" {
		confineTo = p
		if !fi.IsDir() {
			confineTo = filepath.Dir(p)
		}
	}
	if kind == SourcePlain {
		return loadPath(ctx, p, o.Limits, o.Root, budget, each)
	}
	req := BuildRequest{Source: kind, Dir: p, Root: confineTo, Helm: o.Helm, Limits: o.Limits}
	switch kind {
	case SourceHelm:
		if req.Helm.Root == "" {
			req.Helm.Root = confineTo
		}
	case SourceKustomize:
		if o.Root == "" {
			req.Root = workTree(p)
		}
	}
	b := o.Builder
	if b == nil {
		b = InProcess{}
	}
	built, err := b.Build(ctx, req)
	if err != nil {
		return nil, err
	}
	return parseBuilt(built, o.Limits, locate(p, confineTo, each))
}

// workTree returns the top of the git work tree holding dir, or dir when there is none.
func workTree(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// loadPath reads a plain file or directory; root, when set, replaces the path as the
// confinement root of ref+file:// references. Each file's size is taken from budget.
func loadPath(ctx context.Context, p string, limits manifest.Limits, confineTo string, budget *int64, each func(*manifest.Document)) ([]*manifest.Document, error) {
	spend := func(name string, n int64) error {
		if *budget -= n; *budget < 0 {
			return fmt.Errorf("%s: the input is larger than %d bytes in all", name, limits.WithDefaults().MaxStreamBytes)
		}
		return nil
	}
	// With a root, everything is opened through it: a path or a link on the way out of the
	// repository is refused. Without one the path itself is the root (the user named it).
	base := confineTo
	if base == "" {
		base = p
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			base = filepath.Dir(p)
		}
	}
	root, f, err := confine.Open(base, p)
	if err != nil {
		return nil, err
	}
	if f != nil {
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if err := spend(p, st.Size()); err != nil {
			return nil, err
		}
		dir := filepath.Dir(p)
		return manifest.ReadFunc(f, p, limits, locate(dir, or(confineTo, dir), each))
	}
	defer root.Close()
	var docs []*manifest.Document
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("render stopped: %w", context.Cause(ctx))
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
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", filepath.Join(p, rel))
		}
		if err := spend(p, st.Size()); err != nil {
			return err
		}
		name := filepath.Join(p, rel)
		ds, err := manifest.ReadFunc(f, name, limits, locate(filepath.Dir(name), or(confineTo, p), each))
		if err != nil {
			return err
		}
		docs = append(docs, ds...)
		return nil
	})
	return docs, err
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// locate sets where a document's relative file references resolve before handing it on.
func locate(dir, confine string, each func(*manifest.Document)) func(*manifest.Document) {
	return func(d *manifest.Document) {
		d.Dir, d.Confine = dir, confine
		if each != nil {
			each(d)
		}
	}
}
