// Package file is keyway's local backend: secrets from a YAML or JSON file, optionally
// age-encrypted, so a render needs no Vault or cloud account.
//
// Two kinds of reference reach it. A relative path (<path:secret/data/app#password> with
// --backend file) names a top-level key of the configured secrets file, whose value is a map
// of keys — the same shape Vault returns, so manifests render the same from either. Pinned
// versions live under "PATH@VERSION" keys. An absolute path (ref+file://, already resolved
// and confined by the render engine) names a whole YAML or JSON file, read with a JSON pointer.
package file
