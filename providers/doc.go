// Package providers is keyway's secret-backend layer: one small context-first interface that
// the render engine, the syncer and sealing share, a registry of backends keyed by name, and
// the sentinel errors that drive policy (a missing secret, a refused read, an unreachable
// backend) through errors.Is.
//
// A provider is asked for a whole secret, never for one key: the caller de-duplicates
// references and picks keys out of the returned Secret itself.
package providers
