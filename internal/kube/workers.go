package kube

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RunWorkers runs n workers that take keys from q and hand each to handle, until ctx ends;
// then it shuts q down and returns once every key in flight is done, so a caller's Run does
// not return while a reconcile still writes. A panic in handle is recovered: the key (never
// the object) and the stack go to log, the key is retried with back-off, and the worker
// goes on — one bad object cannot end the process; q.Panics counts them. Each key is handled under a deadline
// (KeyTimeout): every API, backend and git request it makes through that context ends with
// it, so no key holds its worker for ever.
func RunWorkers(ctx context.Context, n int, q *Queue, log *slog.Logger, handle func(ctx context.Context, key string)) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				key, ok := q.Get()
				if !ok {
					return
				}
				runOne(ctx, q, log, key, handle)
			}
		})
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

func runOne(ctx context.Context, q *Queue, log *slog.Logger, key string, handle func(ctx context.Context, key string)) {
	defer q.Done(key)
	defer func() {
		if r := recover(); r != nil {
			// A runtime error says what went wrong without values; any other panic value
			// could hold one, so only its type is logged.
			what := fmt.Sprintf("%T", r)
			if re, ok := r.(runtime.Error); ok {
				what = re.Error()
			}
			q.panics.Add(1)
			log.Error("reconcile panicked; retrying with back-off", "key", key, "panic", what, "stack", string(debug.Stack()))
			q.Retry(key)
		}
	}()
	kctx, cancel := context.WithTimeout(ctx, KeyTimeout)
	defer cancel()
	handle(kctx, key)
}

// KeyTimeout bounds the handling of one key by RunWorkers.
var KeyTimeout = 5 * time.Minute

// PanicCounter is a counter metric named name of the handlers that panicked for the queue
// queue returns (nil while there is none yet), for a loop to register.
func PanicCounter(name, help string, queue func() *Queue) prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
		if q := queue(); q != nil {
			return float64(q.Panics())
		}
		return 0
	})
}
