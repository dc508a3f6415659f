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
