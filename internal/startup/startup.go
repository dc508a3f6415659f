// Package startup holds garbage collection off while the binary's packages initialise.
//
// keyway is one binary: every command pays for the package initialisation of every backend
// SDK, Helm and client-go, which allocate about 7 MiB of tables that stay live. Collecting
// while that heap is built is wasted work (a fifth of a short command's CPU), so this
// package, which imports next to nothing and is therefore initialised before the heavy ones,
// switches the collector off; main switches it back on with Resume before doing any work.
package startup

import "runtime/debug"

var before = debug.SetGCPercent(-1)

// Resume restores the collector: percent as given (GOGC semantics), or the value in force
// before start-up (GOGC from the environment, or 100) when percent is 0.
func Resume(percent int) {
	if percent == 0 {
		percent = before
	}
	debug.SetGCPercent(percent)
}

// Before reports the collector setting that was in force before start-up.
func Before() int { return before }
