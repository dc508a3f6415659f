// Package kustomize builds a kustomization in process with kustomize's krusty, on a file
// system that knows only the repository checkout, with exec, container and Helm plugins off
// and every remote reference refused.
//
// Kustomize itself would clone git repositories (running the git program, with options a
// URL can choose) and fetch http(s) URLs. keyway runs builds of untrusted repositories in a
// worker process that has no git on its PATH and no network (see plugins/render), so that
// nothing is downloaded by construction; this package adds a clear error naming the remote
// reference, checked on every kustomization file read.
package kustomize

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
)

// IsKustomization reports whether the directory dir holds a kustomization file, a regular
// one (through an os.Root's FS, a link that leaves it is not).
func IsKustomization(dir fs.FS) bool {
	for _, n := range kustomizationNames {
		if fi, err := fs.Stat(dir, n); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Options bound a build.
type Options struct {
	// Root is the directory nothing may be read from outside of (the repository checkout);
	// default the kustomization's own directory.
	Root string
	// MaxBytes bounds the bytes of all the files the build reads; 0 means no bound.
	MaxBytes int64
}

// Build runs `kustomize build dir` in process and returns the YAML stream.
func Build(dir string, o Options) ([]byte, error) {
	root := o.Root
	if root == "" {
		root = dir
	}
	fsys, err := newRootFS(root, o.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	defer fsys.Close()
	// dir as the file system names it: absolute, under the root's real path.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if _, err := fsys.rel(abs); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	k := krusty.MakeKustomizer(opts)
	var refused error
	m, err := k.Run(checkedFS{fsys, &refused}, abs)
	if refused != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, refused)
	}
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return out, nil
}
