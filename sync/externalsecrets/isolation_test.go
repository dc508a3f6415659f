package externalsecrets

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/providers"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestIsolation(t *testing.T) {
	iso := newIsolation(4) // a store may hold 2 workers
	r1, ok1 := iso.claim("a")
	_, ok2 := iso.claim("a")
	if _, ok3 := iso.claim("a"); !ok1 || !ok2 || ok3 {
		t.Fatalf("claims %v %v %v, want two of four workers", ok1, ok2, ok3)
	}
	if _, ok := iso.claim("b"); !ok {
		t.Fatal("another store was refused a worker")
	}
	r1()
	if _, ok := iso.claim("a"); !ok {
		t.Fatal("a released slot was not given back")
	}

	now := time.Now()
	down := fmt.Errorf("vault: %w: dial tcp: timeout", providers.ErrUnavailable)
	iso.note("a", down, now)
	err := iso.open("a", now.Add(500*time.Millisecond))
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), "not asked") {
		t.Fatalf("within the back-off: %v", err)
	}
	if err := iso.open("b", now); err != nil {
		t.Fatalf("another store is not affected: %v", err)
	}
	if err := iso.open("a", now.Add(time.Second)); err != nil {
		t.Fatalf("after the first second: %v", err)
	}
	for range 10 {
		iso.note("a", down, now)
	}
	if iso.open("a", now.Add(29*time.Second)) == nil || iso.open("a", now.Add(30*time.Second)) != nil {
		t.Fatal("the back-off is not capped at 30 s")
	}
	iso.note("a", providers.ErrNotFound, now) // an answer, if not the hoped-for one
	if err := iso.open("a", now); err != nil {
		t.Fatalf("after an answer: %v", err)
	}
}

func TestOverdueSince(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	es := func(interval, policy string, refreshed time.Duration) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
		if interval != "" {
			_ = unstructured.SetNestedField(u.Object, interval, "spec", "refreshInterval")
		}
		if policy != "" {
			_ = unstructured.SetNestedField(u.Object, policy, "spec", "refreshPolicy")
		}
		if refreshed > 0 {
			_ = unstructured.SetNestedField(u.Object, now.Add(-refreshed).Format(time.RFC3339), "status", "refreshTime")
		}
		return u
	}
	for _, c := range []struct {
		name string
		u    *unstructured.Unstructured
		late bool
	}{
		{"default 1h, refreshed 3h ago", es("", "", 3*time.Hour), true},
		{"1h, refreshed 90m ago", es("1h", "", 90*time.Minute), false},
		{"10s, refreshed 2m ago", es("10s", "Periodic", 2*time.Minute), true},
		{"0s: never refreshed on its own", es("0s", "", 10*time.Hour), false},
		{"OnChange", es("1h", "OnChange", 10*time.Hour), false},
		{"never synced", es("1h", "", 0), false},
	} {
		if _, late := overdueSince(c.u, now); late != c.late {
			t.Errorf("%s: overdue %v, want %v", c.name, late, c.late)
		}
	}
}
