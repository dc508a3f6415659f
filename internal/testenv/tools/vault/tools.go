//go:build tools

// Package vault pins the real Vault server that internal/testenv starts in tests. It is a
// separate module so Vault's dependency graph never enters keyway's go.mod.
package vault

import _ "github.com/hashicorp/vault"
