package parallel

import "sync"

// Keyed holds one mutex per key, made on first use: work on one key is done one at a time
// while other keys go on (a repository's fetches, an application's syncs). The zero value
// is ready to use.
type Keyed struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Lock waits until no one holds key and returns the function that releases it.
func (k *Keyed) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &sync.Mutex{}
		k.locks[key] = l
	}
	k.mu.Unlock()
	l.Lock()
	return l.Unlock
}
