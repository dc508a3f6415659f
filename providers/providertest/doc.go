// Package providertest is the conformance suite every keyway provider passes: found, not
// found, missing version, concurrency, cancellation, and a canary check that no secret value
// reaches an error message. A provider's test supplies a Fixture that seeds its backend.
package providertest
