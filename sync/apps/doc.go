// Package apps is the render-and-apply loop behind `keyway daemon`: Argo CD Application
// manifests in, the cluster converged out. One sync of an application fetches its git
// source (internal/gitsource), renders it through the same engine and policy as the Argo CD
// plugin (the caller's Renderer), checks every object with a server-side dry run before
// writing any, applies what differs wave by wave with server-side apply (field manager
// "keyway", conflicts forced as Argo CD's ServerSideApply does), waits for each wave to be
// healthy (sync/apply's health rules), runs hooks, and prunes what left git — only what
// its inventory says it applied and what still carries its tracking annotation, never after
// a failed or empty render, and not more than the operator's share without confirmation.
//
// Applications found in a rendered output are child applications (App of Apps) and sync
// in their parent's wave. A sync that has nothing to change makes no write request.
package apps
