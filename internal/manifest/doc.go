// Package manifest reads and writes multi-document YAML/JSON streams as yaml.v3 node trees,
// so key order, quoting, block scalars, comments and large integers survive a round trip,
// and bounds untrusted input: stream and document size, nesting depth and alias expansion.
package manifest
