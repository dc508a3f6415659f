// Package apps is Argo CD's semantics behind `keyway daemon`: Applications, ApplicationSets
// and AppProjects in, the cluster converged out. One sync of an application runs named steps
// (syncrun.go): fetch its git source (internal/gitsource) → render it through the same
// engine and policy as the Argo CD plugin (the caller's Renderer) → plan → compare with its
// inventory → guard → apply the waves, run hooks, prune → record. Planning (server-side dry
// runs of every object before any write), server-side apply (field manager "keyway",
// conflicts forced as Argo CD's ServerSideApply does), health and deletion are sync/apply's;
// this package decides what they are asked: Argo CD's annotations (waves, hooks, sync
// options, tracking), projects, prune rules — only what its inventory says it applied and
// what still carries its tracking annotation, never after a failed or empty render, and not
// more than the operator's share without confirmation — statuses, shards and webhooks.
//
// Applications found in a rendered output are child applications (App of Apps) and sync
// in their parent's wave; as in Argo CD since 1.8, a child's health is not its parent's. A sync that has nothing to change makes no write request.
package apps
