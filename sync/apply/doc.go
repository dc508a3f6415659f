// Package apply is keyway's apply engine, knowing nothing of Argo CD: objects in, a change
// set out. It plans (live state, server-side dry runs, drift against the hash of what was
// last applied, ignore rules), applies in waves with server-side apply, waits for health
// (Argo CD's health rules, kstatus for the rest) and prunes with its guards. The caller
// (sync/apps) says what the objects are, which waves and hooks they belong to, and who owns
// them; this package never reads an Application.
//
// Why not a library: fluxcd/pkg/ssa and gitops-engine's pkg/sync were read for it. Flux's
// ResourceManager applies a change set in two stages (CRDs and Namespaces, then the rest)
// and waits on kstatus, but has no waves, hooks or Argo CD health rules, and it dry-runs
// every object on every pass, where keyway's no-op resync compares a recorded hash and costs
// one List per kind. gitops-engine brings its own cluster cache and Argo CD's whole sync
// state machine, which sync/apps replaces with its own steps. From Flux it takes Secret
// normalisation (stringData into data, before plan and apply) and the hand-over of fields
// written by client-side apply (client-go's csaupgrade, handover.go); and like Flux's
// force, an object whose change the API server refuses as immutable is deleted and created
// again when its caller allows it (Object.Recreate; otherwise the plan fails naming it).
package apply
