package externalsecrets

import (
	"time"

	"github.com/keyway-dev/keyway/providers"
)

type fetchEntry struct {
	done   chan struct{}
	secret providers.Secret
	err    error
	at     time.Time
	// The last read that succeeded, kept through failed ones: a repair (a deleted target)
	// or an asker whose window it fits is served from it while the backend is down.
	good   providers.Secret
	goodAt time.Time
	// Guarded by cacheMu: when the entry last served, and the oldest age any asker
	// accepted (a read older than that serves nobody; 0 when an asker takes any age).
	used   time.Time
	window time.Duration
}

// Unused shared reads are dropped: one older than every asker's window at once, any after
// idleRead without an asker (an ExternalSecret that is gone, or one read once).
const (
	pruneEvery = 5 * time.Minute
	idleRead   = 24 * time.Hour
)

// note records that an asker accepting reads made at or after notBefore used e.
func (e *fetchEntry) note(now, notBefore time.Time) {
	e.used = now
	w := now.Sub(notBefore)
	if notBefore.IsZero() {
		w = idleRead
	}
	e.window = max(e.window, w)
}

// prune drops shared reads no asker can use any more; it returns how many are left.
func (s *Syncer) prune(now time.Time) int {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for k, e := range s.fetched {
		select {
		case <-e.done:
		default:
			continue // in flight
		}
		if now.Sub(e.at) > e.window || now.Sub(e.used) > idleRead {
			delete(s.fetched, k)
		}
	}
	return len(s.fetched)
}
