package render

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// workerHeadroom is what a worker's Go runtime needs beyond the heap it may use (stacks,
// GC metadata, the runtime's own structures) before the hard limit applies.
const workerHeadroom = 256 << 20

// hardMemoryLimit makes maxMemory (plus headroom) a limit the kernel enforces on this
// process: one allocation past it fails at once, where the heap watchdog (every 10 ms)
// could be too late for a single huge one. The limit is on the address space (RLIMIT_AS),
// counted from what the process has mapped now — the Go runtime reserves over a GiB of
// address space at start, and RLIMIT_DATA was not enforced reliably against its heap
// mappings. The race detector maps terabytes of shadow memory, so race builds keep only the
// watchdog.
func hardMemoryLimit(maxMemory int64) error {
	if raceEnabled || maxMemory <= 0 {
		return nil
	}
	now, err := mappedBytes()
	if err != nil {
		return err
	}
	lim := uint64(now + maxMemory + workerHeadroom)
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim})
}

// mappedBytes is the process's address space now (VmSize).
func mappedBytes() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmSize in /proc/self/status")
}

var errOutOfMemory = errors.New("the build used more than its memory")
