// Package confine is the one lexical test of whether a path lies under a root directory.
// It resolves no links: callers then read through an os.Root opened at that root, which
// refuses any link that leads out, so the two together confine by construction.
package confine

import (
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
