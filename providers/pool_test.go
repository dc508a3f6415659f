package providers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countingProvider counts opens and closes; settings "fail" make Open fail.
type countingProvider struct{ opens, closes *atomic.Int64 }

type countingClient struct{ closes *atomic.Int64 }

func (c countingClient) Fetch(context.Context, Ref) (Secret, error) { return Secret{}, nil }
func (c countingClient) Close() error                               { c.closes.Add(1); return nil }

func (p countingProvider) Name() string            { return "count" }
func (p countingProvider) Validate(Settings) error { return nil }
func (p countingProvider) Open(_ context.Context, cfg Config) (Client, error) {
	if cfg.Settings["fail"] != "" {
		return nil, errors.New("cannot open")
	}
	p.opens.Add(1)
	return countingClient{p.closes}, nil
}

func TestPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var opens, closes atomic.Int64
		pool := NewPool(NewRegistry(countingProvider{&opens, &closes}), nil, 1200*time.Millisecond)
		use := func(s Settings) error {
			c := pool.Clients(map[string]Settings{"count": s})
			defer c.Close()
			_, err := c.Fetch(t.Context(), Ref{Backend: "count", Path: "x"})
			return err
		}
		for range 20 {
			if err := use(Settings{"role": "a"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := use(Settings{"role": "b"}); err != nil {
			t.Fatal(err)
		}
		if opens.Load() != 2 || closes.Load() != 0 || pool.Open() != 2 {
			t.Fatalf("opens %d closes %d open %d; want 2, 0, 2", opens.Load(), closes.Load(), pool.Open())
		}
		// A failed open is not kept: the next use tries again.
		for range 2 {
			if err := use(Settings{"fail": "1"}); err == nil {
				t.Fatal("a failing open succeeded")
			}
		}
		if pool.Open() != 2 {
			t.Fatalf("a failed client was pooled: %d open", pool.Open())
		}
		// Unused past the idle time: closed (the bubble's clock jumps there).
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if pool.Open() != 0 || closes.Load() != 2 {
			t.Fatalf("after the idle time: %d open, %d closed; want 0 and 2", pool.Open(), closes.Load())
		}
		if err := use(Settings{"role": "a"}); err != nil || opens.Load() != 3 {
			t.Fatalf("reopening after idle: %v, opens %d", err, opens.Load())
		}
		if err := pool.Close(); err != nil || closes.Load() != 3 {
			t.Fatalf("Close: %v, closes %d; want every client closed", err, closes.Load())
		}
		if err := use(Settings{"role": "a"}); err == nil {
			t.Fatal("a closed pool handed out a client")
		}
	})
}
