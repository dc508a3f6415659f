package apps

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/keyway-dev/keyway/sync/apply"
)

// operation is an application's sync that waits for a wave's health, kept between the runs
// that come back to it (Run queues the application again).
type operation struct {
	key     string // the desired state it applies: revision, Application, secrets
	started time.Time
	at      string // what it waits for: "wave 2", "PreSync hooks (wave 0)"
	wave    int    // the wave of it
	since   time.Time
	// Hook waves by phase and wave ("PreSync/0"): created and awaited, or completed. A run
	// that comes back does not create them again (BeforeHookCreation would start them
	// over) and skips those that completed.
	hooksCreated, hooksDone map[string]bool
}

// hookWave names a phase's hook wave in an operation.
func hookWave(phase string, wave int) string { return fmt.Sprintf("%s/%d", phase, wave) }

// opKey is the desired state this run applies.
func (s *syncRun) opKey() string { return s.co.Revision + "/" + s.source + "/" + s.secrets }

// resumes reports whether the named application has an operation of this desired state
// waiting.
func (d *Daemon) resumes(name, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	op, ok := d.ops[name]
	return ok && op.key == key
}

// waitingAt reports whether the named application has an operation waiting at revision.
func (d *Daemon) waitingAt(name, revision string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	op, ok := d.ops[name]
	return ok && strings.HasPrefix(op.key, revision+"/")
}

// beginOp returns the application's operation of this desired state, or a new one (a new
// commit or rotation starts over).
func (d *Daemon) beginOp(name, key string) *operation {
	d.mu.Lock()
	defer d.mu.Unlock()
	if op, ok := d.ops[name]; ok && op.key == key {
		return op
	}
	op := &operation{key: key, started: time.Now(), wave: math.MinInt, hooksCreated: map[string]bool{}, hooksDone: map[string]bool{}}
	d.ops[name] = op
	return op
}

func (d *Daemon) endOp(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ops, name)
}

// wait records that the sync stopped at a wave that is not healthy yet, or fails it once
// the wave has waited longer than --wave-timeout.
func (s *syncRun) wait(w *waiting) error {
	op, st := s.op, s.st
	if op.at != w.at {
		op.at, op.wave, op.since = w.at, w.wave, time.Now()
	}
	if waited := time.Since(op.since); waited > s.d.o.WaveTimeout {
		return fmt.Errorf("%s did not become healthy within %s: %s", w.at, s.d.o.WaveTimeout, w.what)
	}
	st.Sync, st.Health, st.Message = OutOfSync, apply.Progressing, w.Error()
	st.Operation = &Operation{Phase: "Running", Wave: w.wave, StartedAt: op.started.UTC().Truncate(time.Second), WaitingSince: op.since.UTC().Truncate(time.Second)}
	return nil
}
