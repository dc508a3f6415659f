// Package render is keyway's substitution engine: it reads manifests, finds every secret
// reference with the reference grammar, fetches each distinct secret exactly once,
// concurrently and with a bound, and substitutes values into exactly the fields that asked
// for them. It fails closed: any unresolved reference means no output and an error listing
// every problem with file, document, field path and reason, never a value.
//
// One job per file:
//
//	engine.go      the Engine, its options and the error it reports
//	session.go     scheduling: documents in as they are parsed, fetches out as refs appear
//	walk.go        a document's annotations and the walk that finds its reference sites
//	confine.go     where a ref+file:// path may point
//	substitute.go  values into nodes, typed or as text, quoting what needs it
//	input.go       loading paths, stdin, Helm charts and kustomizations
//	build.go       the build worker that runs Helm and kustomize out of process
package render
