// Package sealing implements Bitnami Sealed Secrets' hybrid encryption and SealedSecret
// objects with the standard library, byte for byte compatible with kubeseal and the
// sealed-secrets controller in both directions, plus keyway's multi-cluster sealing and
// offline re-encryption.
//
// Crypto functions take the random source as an argument so tests can make outputs
// reproducible; production callers pass crypto/rand.Reader.
package sealing
