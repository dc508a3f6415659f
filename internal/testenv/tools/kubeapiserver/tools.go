//go:build tools

// Package kubeapiserver pins the real kube-apiserver that internal/testenv starts in tests.
// It is a separate module so Kubernetes' dependency graph never enters keyway's go.mod.
package kubeapiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
