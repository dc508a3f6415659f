package kube

import (
	"sync"
	"testing"
	"testing/synctest"
)

func TestQueueHighFirst(t *testing.T) {
	q := NewQueue()
	for _, k := range []string{"r1", "r2", "r3"} {
		q.Add(k, Low)
	}
	q.Add("new", High)
	q.Add("r2", High) // raised: served before r1 and r3
	q.Add("r1", Low)  // already waiting: no duplicate
	var got []string
	for q.Len() > 0 {
		k, _ := q.Get()
		got = append(got, k)
		q.Done(k)
	}
	want := []string{"new", "r2", "r1", "r3"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestQueueOneWorkerPerKey(t *testing.T) {
	q := NewQueue()
	q.Add("k", Low)
	k, _ := q.Get()
	q.Add("k", Low)
	q.Add("k", High) // while processing: once more afterwards, at High
	q.Add("other", Low)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len = %d while k is processed, want 1 (other)", n)
	}
	q.Done(k)
	if k2, _ := q.Get(); k2 != "k" {
		t.Fatalf("after Done got %q, want k again at High before other", k2)
	}
}

func TestQueueShutDownWakesGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewQueue()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if _, ok := q.Get(); ok {
					t.Error("Get returned a key from an empty, shut-down queue")
				}
			})
		}
		synctest.Wait() // every Get is waiting
		q.ShutDown()
		wg.Wait()
		q.Add("late", High)
		if q.Len() != 0 {
			t.Fatal("Add after ShutDown queued a key")
		}
	})
}
