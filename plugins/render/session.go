package render

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
	"github.com/keyway-dev/keyway/providers"
)

// Session is one render in progress: documents are added as they are parsed (from any
// goroutine) and each new secret is fetched as soon as the first reference to it is seen,
// so fetch latency overlaps with reading the rest of the input.
type Session struct {
	e   *Engine
	ctx context.Context

	mu       sync.Mutex
	docs     map[*manifest.Document]*docState
	results  map[providers.Ref]*result
	refCount int
	overflow *Problem

	queue   chan []providers.Ref // work items: one ref, or a batch for a providers.BatchClient
	pending [][]providers.Ref    // work that found the queue full after ctx ended
	batches map[string][]providers.Ref
	workers sync.WaitGroup
}

type docState struct {
	sites    []*site
	problems []Problem
}

// Start begins a render. Every Session must be finished with Finish.
func (e *Engine) Start(ctx context.Context) *Session {
	s := &Session{
		e: e, ctx: ctx,
		docs:    map[*manifest.Document]*docState{},
		results: map[providers.Ref]*result{},
		queue:   make(chan []providers.Ref, 4096),
		batches: map[string][]providers.Ref{},
	}
	for range e.opts.Concurrency {
		s.workers.Go(s.fetchLoop)
	}
	return s
}

// Add reads a document's annotations, finds its references and queues fetches for secrets
// not seen before. It is safe for concurrent use.
func (s *Session) Add(d *manifest.Document) {
	st := &docState{}
	dc, skip, err := readAnnotations(d)
	switch {
	case err != nil:
		st.problems = append(st.problems, Problem{Source: d.Source, Document: d.Index, Reason: err.Error()})
	case !skip:
		w := walker{engine: s.e, doc: d, dc: dc}
		w.walk(d.Root, nil, nil)
		st.sites, st.problems = w.sites, w.problems
	}
	n := 0
	for _, site := range st.sites {
		n += len(site.refs)
	}
	s.mu.Lock()
	s.docs[d] = st
	s.refCount += n
	if s.refCount > s.e.opts.MaxReferences {
		if s.overflow == nil {
			s.overflow = &Problem{Source: d.Source, Document: d.Index, Reason: fmt.Sprintf("more than %d references in one render", s.e.opts.MaxReferences)}
		}
		s.mu.Unlock()
		return
	}
	var fresh []providers.Ref
	for _, site := range st.sites {
		for _, r := range site.refs {
			if _, ok := s.results[r]; !ok {
				s.results[r] = &result{}
				fresh = append(fresh, r)
			}
		}
	}
	s.mu.Unlock()
	bf, canBatch := s.e.fetch.(providers.BatchClient)
	for _, r := range fresh {
		if canBatch {
			if n := bf.BatchSize(s.ctx, r); n > 1 {
				s.mu.Lock()
				b := append(s.batches[r.Backend], r)
				if len(b) < n {
					s.batches[r.Backend] = b
					s.mu.Unlock()
					continue
				}
				delete(s.batches, r.Backend)
				s.mu.Unlock()
				s.dispatch(b)
				continue
			}
		}
		s.dispatch([]providers.Ref{r})
	}
}

func (s *Session) dispatch(work []providers.Ref) {
	select {
	case s.queue <- work:
	case <-s.ctx.Done():
		s.mu.Lock()
		s.pending = append(s.pending, work)
		s.mu.Unlock()
	}
}

func (s *Session) fetchLoop() {
	for work := range s.queue {
		s.fetch(work)
	}
}

func (s *Session) fetch(work []providers.Ref) {
	s.mu.Lock()
	res := make([]*result, len(work))
	for i, r := range work {
		res[i] = s.results[r]
	}
	s.mu.Unlock()
	if err := s.ctx.Err(); err != nil {
		for _, r := range res {
			r.err = fmt.Errorf("%w: %v", providers.ErrUnavailable, err)
		}
		return
	}
	start := time.Now()
	if len(work) == 1 {
		res[0].secret, res[0].err = s.e.fetch.Fetch(s.ctx, work[0])
	} else {
		for i, out := range s.e.fetch.(providers.BatchClient).FetchBatch(s.ctx, work) {
			res[i].secret, res[i].err = out.Secret, out.Err
		}
	}
	for i, r := range work {
		if res[i].err != nil {
			s.e.opts.Logger.Debug("fetch failed", "ref", r.String(), "batch", len(work), "duration", time.Since(start), "error", res[i].err)
		} else {
			s.e.opts.Logger.Debug("fetched", "ref", r.String(), "batch", len(work), "keys", len(res[i].secret.Data), "duration", time.Since(start))
		}
	}
}

// Finish waits for every fetch and substitutes, in the order of docs (every added document
// must be listed). On any problem it returns *Error and the documents must be discarded.
func (s *Session) Finish(docs []*manifest.Document) (Stats, error) {
	s.mu.Lock()
	rest := s.batches
	s.batches = nil
	s.mu.Unlock()
	for _, b := range rest {
		s.dispatch(b)
	}
	close(s.queue)
	s.workers.Wait()
	for _, work := range s.pending {
		s.fetch(work)
	}
	stats := Stats{Documents: len(docs), Fetches: len(s.results)}
	if s.overflow != nil {
		return stats, &Error{Problems: []Problem{*s.overflow}}
	}
	// Documents substitute independently; spread them over the cores, then report problems
	// in input order.
	states := make([]*docState, len(docs))
	for i, d := range docs {
		states[i] = s.docs[d]
	}
	var refs atomic.Int64
	parallel.For(len(states), func(i int) {
		st := states[i]
		if st == nil {
			return
		}
		for _, site := range st.sites {
			ps := substitute(site, s.results)
			if len(ps) == 0 {
				refs.Add(int64(len(site.refs)))
			}
			st.problems = append(st.problems, ps...)
		}
	})
	stats.References = int(refs.Load())
	var problems []Problem
	for _, st := range states {
		if st != nil {
			problems = append(problems, st.problems...)
		}
	}
	if len(problems) > 0 {
		return stats, &Error{Problems: problems}
	}
	return stats, nil
}
