// Package render is keyway's substitution engine: it reads manifests, finds every secret
// reference with the reference grammar, fetches each distinct secret exactly once,
// concurrently and with a bound, and substitutes values into exactly the fields that asked
// for them. It fails closed: any unresolved reference means no output and an error listing
// every problem with file, document, field path and reason, never a value.
package render
