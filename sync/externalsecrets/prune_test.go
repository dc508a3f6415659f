package externalsecrets

import (
	"testing"
	"time"
)

// TestPrune: a shared read stays while some asker's window still accepts it, and goes once
// it is older than every window or unused for a day; reads in flight are never dropped.
func TestPrune(t *testing.T) {
	now := time.Now()
	done := make(chan struct{})
	close(done)
	entry := func(age time.Duration, notBefore time.Time, used time.Time) *fetchEntry {
		e := &fetchEntry{done: done, at: now.Add(-age)}
		e.note(used, notBefore)
		return e
	}
	s := &Syncer{fetched: map[string]*fetchEntry{
		"fresh":     entry(10*time.Minute, now.Add(-48*time.Minute), now),      // 1h refresh: still usable
		"stale":     entry(50*time.Minute, now.Add(-48*time.Minute), now),      // older than its window
		"once":      entry(2*time.Hour, time.Time{}, now.Add(-time.Hour)),      // sync-once asker, used lately
		"forgotten": entry(30*time.Hour, time.Time{}, now.Add(-25*time.Hour)),  // nobody asked for a day
		"inflight":  {done: make(chan struct{}), at: now.Add(-72 * time.Hour)}, // a read in progress
	}}
	if left := s.prune(now); left != 3 {
		t.Fatalf("%d entries left, want 3", left)
	}
	for _, k := range []string{"fresh", "once", "inflight"} {
		if _, ok := s.fetched[k]; !ok {
			t.Errorf("%s was pruned", k)
		}
	}
}
