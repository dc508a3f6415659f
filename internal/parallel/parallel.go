// Package parallel runs independent items of a batch over the machine's cores, keeping
// results in input order: document parsing, substitution and sealing all have that shape.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// For calls fn(i) for every i in [0, n) on at most GOMAXPROCS goroutines and returns when
// all calls have. Items are handed out in order, so early items finish first. fn writes its
// result into a slot of its own (out[i]); nothing else is shared.
func For(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// Map calls fn for every item, as For does, and returns the results in input order with
// the first error in input order (later items still run: each is independent).
func Map[T, R any](items []T, fn func(i int, item T) (R, error)) ([]R, error) {
	out := make([]R, len(items))
	errs := make([]error, len(items))
	For(len(items), func(i int) { out[i], errs[i] = fn(i, items[i]) })
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
