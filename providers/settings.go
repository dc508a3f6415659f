package providers

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SettingError is a setting that is unknown or malformed. It names the setting, and the
// nearest known one for a likely typo; never the value of a secret setting.
type SettingError struct {
	Backend string // filled in by Registry.Validate
	Key     string
	Reason  string
	Suggest string // a known setting close to an unknown Key
}

func (e *SettingError) Error() string {
	msg := fmt.Sprintf("setting %q: %s", e.Key, e.Reason)
	if e.Key == "" {
		msg = e.Reason
	}
	if e.Backend != "" {
		msg = fmt.Sprintf("backend %q %s", e.Backend, msg)
	}
	if e.Suggest != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", e.Suggest)
	}
	return msg
}

// Check returns a *SettingError for the first key (in sorted order) that is not known.
func (s Settings) Check(known ...string) error {
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if !slices.Contains(known, k) {
			e := &SettingError{Key: k, Reason: "unknown setting", Suggest: Nearest(k, known)}
			if e.Suggest == "" {
				e.Reason += " (known: " + strings.Join(slices.Sorted(slices.Values(known)), ", ") + ")"
			}
			return e
		}
	}
	return nil
}

// Int reads an integer setting of at least min, def when unset.
func (s Settings) Int(key string, def, min int) (int, error) {
	v, ok := s[key]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min {
		return 0, &SettingError{Key: key, Reason: fmt.Sprintf("%q is not a whole number ≥ %d", v, min)}
	}
	return n, nil
}

// Duration reads a positive duration setting ("30s"), def when unset.
func (s Settings) Duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := s[key]
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, &SettingError{Key: key, Reason: fmt.Sprintf("%q is not a positive duration such as 30s", v)}
	}
	return d, nil
}

// Bool reads a true/false setting, def when unset.
func (s Settings) Bool(key string, def bool) (bool, error) {
	v, ok := s[key]
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, &SettingError{Key: key, Reason: fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

// OneOf reads a setting that must be one of choices (compared case-insensitively), def when
// unset; the result is the choice as listed.
func (s Settings) OneOf(key, def string, choices ...string) (string, error) {
	v, ok := s[key]
	if !ok || v == "" {
		return def, nil
	}
	for _, c := range choices {
		if strings.EqualFold(strings.TrimSpace(v), c) {
			return c, nil
		}
	}
	return "", &SettingError{Key: key, Reason: fmt.Sprintf("%q is not one of %s", v, strings.Join(choices, ", ")), Suggest: Nearest(strings.ToLower(v), choices)}
}

// Nearest returns the candidate closest to name by edit distance when it is close enough
// to be a typo (at most a third of the name's length, and at least 1 or 2 edits), else "".
func Nearest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+1
	if bestD < 2 {
		bestD = 2
	}
	for _, c := range candidates {
		if d := editDistance(name, c); d <= bestD && (best == "" || d < editDistance(name, best)) {
			best = c
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counted in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
