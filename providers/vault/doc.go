// Package vault reads secrets from HashiCorp Vault's KV engines (v1 and v2) with one request
// per distinct secret. It logs in once per process (token, AppRole, Kubernetes, userpass or
// JWT), renews a renewable token before it expires, logs in again once when a token turns
// out to have expired, detects each mount's KV version once (falling back to the configured
// version when policy forbids the lookup), and bounds the requests it has in flight.
package vault
