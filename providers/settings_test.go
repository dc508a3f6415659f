package providers

import (
	"strings"
	"testing"
	"time"
)

func TestSettingsAccessors(t *testing.T) {
	s := Settings{"n": "7", "neg": "-1", "d": "2s", "bad": "soon", "b": "true", "m": "Kubernetes", "x": "ldap"}
	if n, err := s.Int("n", 1, 0); n != 7 || err != nil {
		t.Fatalf("Int = %d, %v", n, err)
	}
	if n, err := s.Int("unset", 5, 1); n != 5 || err != nil {
		t.Fatalf("Int default = %d, %v", n, err)
	}
	if _, err := s.Int("neg", 1, 0); err == nil || !strings.Contains(err.Error(), `setting "neg": "-1" is not a whole number ≥ 0`) {
		t.Fatalf("Int below min: %v", err)
	}
	if d, err := s.Duration("d", time.Second); d != 2*time.Second || err != nil {
		t.Fatalf("Duration = %v, %v", d, err)
	}
	if _, err := s.Duration("bad", time.Second); err == nil {
		t.Fatal("Duration accepted soon")
	}
	if b, err := s.Bool("b", false); !b || err != nil {
		t.Fatalf("Bool = %v, %v", b, err)
	}
	if m, err := s.OneOf("m", "token", "token", "kubernetes"); m != "kubernetes" || err != nil {
		t.Fatalf("OneOf = %q, %v", m, err)
	}
	if _, err := s.OneOf("x", "token", "token", "kubernetes"); err == nil {
		t.Fatal("OneOf accepted ldap")
	}
}

func TestCheckSuggests(t *testing.T) {
	known := []string{"address", "max-in-flight", "max-retries", "region"}
	for in, want := range map[string]string{
		"max-inflight": `setting "max-inflight": unknown setting (did you mean "max-in-flight"?)`,
		"adress":       `setting "adress": unknown setting (did you mean "address"?)`,
		"regoin":       `setting "regoin": unknown setting (did you mean "region"?)`,
		"colour":       `setting "colour": unknown setting (known: address, max-in-flight, max-retries, region)`,
	} {
		err := Settings{in: "v"}.Check(known...)
		if err == nil || err.Error() != want {
			t.Errorf("Check(%q) = %v, want %s", in, err, want)
		}
	}
	if err := (Settings{"region": "x"}).Check(known...); err != nil {
		t.Fatal(err)
	}
}
