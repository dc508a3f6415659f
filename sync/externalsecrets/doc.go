// Package externalsecrets is the ExternalSecret syncer: it serves External Secrets'
// external-secrets.io API (SecretStore, ClusterSecretStore, ExternalSecret) and keeps each
// target Secret equal to what its ExternalSecret reads from a backend, on its refresh
// interval, reading each distinct secret once per principal however many ask for it. Nothing
// it logs, records in events, writes to status or labels metrics with holds a secret value.
package externalsecrets
