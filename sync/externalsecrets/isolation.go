package externalsecrets

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyway-dev/keyway/providers"
)

// One failing backend must not starve every other store. Two rails keep stores apart:
//
//   - a store (its backend principal) may hold at most half the workers at once; an
//     ExternalSecret whose store is at its share is queued again shortly instead of taking
//     a worker to wait, so a backend that answers slowly or not at all leaves the other
//     workers to the other stores;
//   - a backend that could not be reached is not asked again until its back-off passes
//     (1 s, doubling to 30 s, reset by a success): meanwhile its ExternalSecrets fail at
//     once with the reason (their last good Secret stays) instead of each waiting out a
//     request timeout.
type isolation struct {
	mu       sync.Mutex
	share    int
	inFlight map[string]int
	broken   map[string]*breaker
}

type breaker struct {
	failures int
	last     time.Time
	until    time.Time
}

// errStoreBusy says the ExternalSecret's store holds its share of the workers.
var errStoreBusy = errors.New("the store holds its share of the workers")

const (
	breakerFirst = time.Second
	breakerMax   = 30 * time.Second
)

func newIsolation(workers int) *isolation {
	return &isolation{share: max(1, workers/2), inFlight: map[string]int{}, broken: map[string]*breaker{}}
}

// claim takes one of the store's worker slots; ok is false when it holds its share.
func (i *isolation) claim(store string) (release func(), ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.inFlight[store] >= i.share {
		return nil, false
	}
	i.inFlight[store]++
	return func() {
		i.mu.Lock()
		defer i.mu.Unlock()
		if i.inFlight[store]--; i.inFlight[store] <= 0 {
			delete(i.inFlight, store)
		}
	}, true
}

// open returns the error a read of store's backend gets while its back-off runs, or nil.
func (i *isolation) open(store string, now time.Time) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	b, ok := i.broken[store]
	if !ok || !now.Before(b.until) {
		return nil
	}
	return fmt.Errorf("%w: not asked: the backend failed %s ago (%d time(s) in a row); next attempt in %s",
		providers.ErrUnavailable, now.Sub(b.last).Round(time.Second), b.failures, b.until.Sub(now).Round(100*time.Millisecond))
}

// note records the outcome of a read of store's backend.
func (i *isolation) note(store string, err error, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !errors.Is(err, providers.ErrUnavailable) {
		delete(i.broken, store)
		return
	}
	b, ok := i.broken[store]
	if !ok {
		b = &breaker{}
		i.broken[store] = b
	}
	b.failures++
	wait := breakerFirst << min(b.failures-1, 5)
	b.last, b.until = now, now.Add(min(wait, breakerMax))
}

// storeBusyDelay is how soon an ExternalSecret whose store holds its share comes back.
const storeBusyDelay = 250 * time.Millisecond

// isolationKey is the store as isolation counts it: its backend principal (stores with the
// same credentials on the same backend share one), or the fake store's name.
func (st *storeConfig) isolationKey(pool *providers.Pool) string {
	if st.backend == "fake" {
		return fmt.Sprintf("fake\x00%p", st.fake) // one fake store: one map
	}
	return pool.Principal(st.backend, st.settings)
}
