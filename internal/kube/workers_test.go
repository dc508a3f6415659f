package kube

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestRunWorkersSurvivesPanics: a key whose handler panics is logged and retried, the other
// keys are handled, and RunWorkers returns only after the handler in flight is done.
func TestRunWorkersSurvivesPanics(t *testing.T) {
	// In a bubble: the clock is fake, so the back-off and the waits below take no time.
	synctest.Test(t, func(t *testing.T) {
		q := NewQueue()
		var mu sync.Mutex
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))
		var bad atomic.Int32
		done := make(chan string, 10)
		release := make(chan struct{})
		var finished atomic.Bool
		ctx, cancel := context.WithCancel(t.Context())
		returned := make(chan struct{})
		go func() {
			RunWorkers(ctx, 2, q, log, func(_ context.Context, key string) {
				switch key {
				case "bad":
					if bad.Add(1) < 3 {
						panic("CANARY-boom")
					}
				case "slow":
					<-release
					finished.Store(true)
				}
				done <- key
			})
			close(returned)
		}()
		q.Add("bad", High)
		q.Add("good", High)
		seen := map[string]bool{}
		for len(seen) < 2 {
			select {
			case k := <-done:
				seen[k] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("handled %v", seen)
			}
		}
		if bad.Load() != 3 {
			t.Fatalf("the panicking key ran %d times, want 3 (two panics, then handled)", bad.Load())
		}
		mu.Lock()
		if !strings.Contains(logs.String(), "reconcile panicked") || !strings.Contains(logs.String(), "key=bad") {
			t.Errorf("the panic was not logged with its key:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "CANARY") {
			t.Errorf("a panic's value reached the log:\n%s", logs.String())
		}
		mu.Unlock()
		// Shutdown waits for the key in flight.
		q.Add("slow", High)
		synctest.Wait() // the slow key is in its handler
		cancel()
		select {
		case <-returned:
			t.Fatal("RunWorkers returned while a key was in flight")
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		<-returned
		if !finished.Load() {
			t.Fatal("the key in flight did not finish")
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
