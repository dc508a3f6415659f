// Package parallel holds keyway's two concurrency shapes: independent items of a batch run
// over the machine's cores with results kept in input order (document parsing,
// substitution, sealing), and work serialised per key while other keys go on (Keyed).
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

// Pipeline reads items with next until it reports none left, runs fn over them on workers
// goroutines with at most window items between reading and output, and hands the results
// to out in input order. Memory is bounded by window whatever the input's length. It stops
// at the first error (from next, fn or out, in input order) after handing out every result
// before it, and returns that error.
func Pipeline[T, R any](workers, window int, next func() (T, bool, error), fn func(T) (R, error), out func(R) error) error {
	workers, window = max(workers, 1), max(window, workers, 1)
	type job struct {
		seq  int
		item T
	}
	type result struct {
		seq int
		r   R
		err error
	}
	jobs := make(chan job)
	results := make(chan result, window)
	slots := make(chan struct{}, window)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(jobs)
		for seq := 0; ; seq++ {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			item, ok, err := next()
			if err != nil {
				readErr = err
				return
			}
			if !ok {
				return
			}
			select {
			case jobs <- job{seq, item}:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				r, err := fn(j.item)
				results <- result{j.seq, r, err}
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	pending := map[int]result{}
	emitted := 0
	var firstErr error
	for r := range results {
		pending[r.seq] = r
		for {
			p, ok := pending[emitted]
			if !ok {
				break
			}
			delete(pending, emitted)
			emitted++
			if firstErr == nil {
				if p.err == nil {
					p.err = out(p.r)
				}
				if p.err != nil {
					firstErr = p.err
					close(stop)
				}
			}
			<-slots // only once out is done with it: at most window items are held at once
		}
	}
	// results is closed, so the reader has returned: readErr is settled. Every item read
	// before the failed read has been handed out.
	if firstErr == nil && readErr != nil {
		firstErr = readErr
	}
	return firstErr
}
