// Package awssm reads secrets from AWS Secrets Manager with the official SDK. The distinct
// secrets of one render are read with BatchGetSecretValue, 20 per call, falling back to
// GetSecretValue for pinned versions and where the batch API is refused. A JSON SecretString
// exposes its keys; a plain SecretString or a SecretBinary is one value, under the key
// "value" and as the whole secret (ref+awssm://NAME without a pointer).
package awssm
