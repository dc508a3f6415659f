package render

import (
	"errors"
	"syscall"
)

// workerHeadroom is what a worker's Go runtime needs beyond the heap it may use (stacks,
// GC metadata, the runtime's own structures) before the hard limit applies.
const workerHeadroom = 512 << 20

// hardMemoryLimit makes maxMemory (plus headroom) a limit the kernel enforces on this
// process's data: one allocation past it fails at once, where the heap watchdog (every
// 10 ms) could be too late for a single huge one. The race detector maps terabytes of
// shadow memory, so race builds keep only the watchdog.
func hardMemoryLimit(maxMemory int64) error {
	if raceEnabled || maxMemory <= 0 {
		return nil
	}
	lim := uint64(maxMemory + workerHeadroom)
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: lim, Max: lim})
}

var errOutOfMemory = errors.New("the build used more than its memory")
