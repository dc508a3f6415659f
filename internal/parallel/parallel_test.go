package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestForVisitsEachOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 1000} {
		seen := make([]atomic.Int32, n)
		For(n, func(i int) { seen[i].Add(1) })
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Fatalf("n=%d: item %d visited %d times", n, i, got)
			}
		}
	}
}

func TestMapOrderAndFirstError(t *testing.T) {
	items := []int{5, 4, 3, 2, 1}
	out, err := Map(items, func(i, v int) (string, error) { return fmt.Sprint(i, ":", v), nil })
	if err != nil || fmt.Sprint(out) != "[0:5 1:4 2:3 3:2 4:1]" {
		t.Fatalf("Map = %v, %v", out, err)
	}
	_, err = Map(items, func(i, v int) (int, error) {
		if v <= 3 {
			return 0, fmt.Errorf("item %d", i)
		}
		return v, nil
	})
	if err == nil || err.Error() != "item 2" {
		t.Fatalf("err = %v, want the first in input order (item 2)", err)
	}
	if _, err := Map([]int{}, func(int, int) (int, error) { return 0, errors.New("never") }); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineOrderBoundAndErrors(t *testing.T) {
	const n = 500
	var inFlight, peak atomic.Int64
	i := 0
	next := func() (int, bool, error) {
		if i == n {
			return 0, false, nil
		}
		i++
		if v := inFlight.Add(1); v > peak.Load() {
			peak.Store(v)
		}
		return i - 1, true, nil
	}
	var got []int
	err := Pipeline(4, 8, next, func(v int) (int, error) { return v * 2, nil }, func(r int) error {
		inFlight.Add(-1)
		got = append(got, r)
		return nil
	})
	if err != nil || len(got) != n {
		t.Fatalf("err = %v, %d results", err, len(got))
	}
	for k, r := range got {
		if r != 2*k {
			t.Fatalf("result %d = %d: out of order", k, r)
		}
	}
	if p := peak.Load(); p > 8 {
		t.Fatalf("%d items in flight, window is 8", p)
	}

	// A failure stops the pipeline after everything before it was handed out.
	for name, tc := range map[string]struct {
		readFail, fnFail, outFail int
	}{"read": {readFail: 100, fnFail: -1, outFail: -1}, "fn": {readFail: -1, fnFail: 100, outFail: -1}, "out": {readFail: -1, fnFail: -1, outFail: 100}} {
		t.Run(name, func(t *testing.T) {
			i := 0
			var outs []int
			err := Pipeline(3, 5, func() (int, bool, error) {
				if i == tc.readFail {
					return 0, false, errors.New("read 100")
				}
				if i == n {
					return 0, false, nil
				}
				i++
				return i - 1, true, nil
			}, func(v int) (int, error) {
				if v == tc.fnFail {
					return 0, errors.New("fn 100")
				}
				return v, nil
			}, func(v int) error {
				if v == tc.outFail {
					return errors.New("out 100")
				}
				outs = append(outs, v)
				return nil
			})
			if err == nil || err.Error() != name+" 100" || len(outs) != 100 {
				t.Fatalf("err = %v after %d results, want %q after 100", err, len(outs), name+" 100")
			}
		})
	}
}
