//go:build tools

// Package kubeseal pins the upstream kubeseal CLI that the sealing interop tests run.
package kubeseal

import _ "github.com/bitnami-labs/sealed-secrets/cmd/kubeseal"
