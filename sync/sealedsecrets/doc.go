// Package sealedsecrets is the SealedSecret unsealer: it watches bitnami.com/v1alpha1
// SealedSecrets and creates or updates the Secret each describes, owned by it; it keeps the
// sealing key ring, serves the sealing certificate and the verify/rotate endpoints, and
// exposes Prometheus metrics. Nothing it logs, records in events or writes to status holds a
// secret value.
package sealedsecrets
