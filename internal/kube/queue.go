// Package kube is the plumbing keyway's controllers share: client configuration with their
// own rate limits, leader election on a client of its own, and a work queue that serves
// new work before periodic checks.
package kube

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// Priority orders work in a Queue.
type Priority int

const (
	// Low is for periodic checks (informer resyncs): done when nothing else waits.
	Low Priority = iota
	// High is for new and changed objects, drift and retries.
	High
)

// Queue is a de-duplicating work queue with two priorities: a key added at High is handed
// out before every Low key, so a resync of thousands of settled objects never delays an
// object that was just created. As with client-go's workqueue, a key is handed to one
// worker at a time; one added again while it is being processed is handed out again after
// Done, at the higher of its priorities.
type Queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	queued     map[string]Priority // keys waiting, and at which priority
	high, low  []string
	processing map[string]bool
	dirty      map[string]Priority // added while processing
	shutdown   bool
	limiter    workqueue.TypedRateLimiter[string]
	panics     atomic.Int64 // handlers that panicked (RunWorkers)
}

// Panics is how many times a handler RunWorkers ran for this queue panicked (and was
// recovered): what a loop's panics_total metric reports.
func (q *Queue) Panics() int64 { return q.panics.Load() }

// NewQueue returns an empty queue; failed keys come back after client-go's controller
// back-off (per-key exponential, overall token bucket).
func NewQueue() *Queue {
	q := &Queue{queued: map[string]Priority{}, processing: map[string]bool{}, dirty: map[string]Priority{},
		limiter: workqueue.DefaultTypedControllerRateLimiter[string]()}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key at priority p, or raises its priority if it already waits lower.
func (q *Queue) Add(key string, p Priority) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if q.processing[key] {
		if cur, ok := q.dirty[key]; !ok || p > cur {
			q.dirty[key] = p
		}
		return
	}
	q.push(key, p)
}

func (q *Queue) push(key string, p Priority) {
	cur, waiting := q.queued[key]
	switch {
	case !waiting:
	case p > cur:
		// Move it up: the Low entry is skipped when it comes out (queued says High now).
	default:
		return
	}
	q.queued[key] = p
	if p == High {
		q.high = append(q.high, key)
	} else {
		q.low = append(q.low, key)
	}
	q.cond.Signal()
}

// Get blocks until a key is available (High first) and returns it, or returns false once
// the queue is shut down.
func (q *Queue) Get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.shutdown {
			return "", false
		}
		if key, ok := q.pop(); ok {
			q.processing[key] = true
			return key, true
		}
		q.cond.Wait()
	}
}

func (q *Queue) pop() (string, bool) {
	if key, ok := q.take(&q.high, High); ok {
		return key, true
	}
	return q.take(&q.low, Low)
}

// take removes the first key of list still waiting at priority p (a key raised to High
// leaves a stale Low entry behind, skipped here).
func (q *Queue) take(list *[]string, p Priority) (string, bool) {
	for len(*list) > 0 {
		key := (*list)[0]
		*list = (*list)[1:]
		if cur, ok := q.queued[key]; ok && cur == p {
			delete(q.queued, key)
			return key, true
		}
	}
	return "", false
}

// Done marks key processed; a key added meanwhile is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if p, ok := q.dirty[key]; ok {
		delete(q.dirty, key)
		if !q.shutdown {
			q.push(key, p)
		}
	}
}

// Retry queues key again at High after its back-off.
func (q *Queue) Retry(key string) {
	d := q.limiter.When(key)
	time.AfterFunc(d, func() { q.Add(key, High) })
}

// Forget clears key's back-off after a success.
func (q *Queue) Forget(key string) { q.limiter.Forget(key) }

// Len is the number of keys waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}

// ShutDown wakes every Get with false; later Adds are dropped.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	q.cond.Broadcast()
}
