//go:build tools

// Package clis pins the real helm and kustomize CLIs that the plugin tests drive (Helm
// post-renderer, kustomize KRM function). A separate module keeps them out of keyway's go.mod.
package clis

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
