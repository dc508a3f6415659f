package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/keyway-dev/keyway/providers"
)

// Recorder is a render's fetcher that notes what each secret read returned (a hash, in
// memory only), so a later poll can tell whether any secret changed without rendering again.
type Recorder struct {
	*providers.Clients
	// Values, when not nil, collects every value read (keyway diff redacts them).
	Values *Redactor

	mu   sync.Mutex
	seen map[string]Input
}

// Fetch implements the render engine's fetcher.
func (r *Recorder) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	s, err := r.Clients.Fetch(ctx, ref)
	if err == nil {
		r.note(ref, s)
	}
	return s, err
}

// FetchBatch implements providers.BatchClient.
func (r *Recorder) FetchBatch(ctx context.Context, refs []providers.Ref) []providers.Result {
	out := r.Clients.FetchBatch(ctx, refs)
	for i, res := range out {
		if res.Err == nil {
			r.note(refs[i], res.Secret)
		}
	}
	return out
}

func (r *Recorder) note(ref providers.Ref, s providers.Secret) {
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]Input{}
	}
	r.seen[ref.String()] = Input{Ref: ref, Hash: SecretHash(s)}
	r.mu.Unlock()
	if r.Values != nil {
		r.Values.Add(s)
	}
}

// Inputs are the secrets read so far.
func (r *Recorder) Inputs() []Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Input, 0, len(r.seen))
	for _, in := range r.seen {
		out = append(out, in)
	}
	return out
}

// SecretHash fingerprints what a read returned (kept in memory only).
func SecretHash(s providers.Secret) string {
	b, _ := json.Marshal(struct {
		D map[string]any
		W any
		V string
	}{s.Data, s.Whole, s.Version})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Redactor holds secret values read by renders, in memory only, to redact them from output
// that shows rendered objects.
type Redactor struct {
	mu   sync.Mutex
	vals map[string]bool
}

// minRedacted is the shortest value redacted: shorter ones would blank out ordinary words.
const minRedacted = 4

// Add collects every string in a secret, and each line of a multi-line one (a diff shows
// them line by line).
func (v *Redactor) Add(s providers.Secret) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.vals == nil {
		v.vals = map[string]bool{}
	}
	var walk func(x any)
	walk = func(x any) {
		switch t := x.(type) {
		case string:
			if len(t) < minRedacted {
				return
			}
			v.vals[t] = true
			for _, line := range strings.Split(t, "\n") {
				if line = strings.TrimSpace(line); len(line) >= minRedacted {
					v.vals[line] = true
				}
			}
		case []byte:
			walk(string(t))
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(s.Data)
	walk(s.Whole)
}

// Redact replaces every collected value in text, longest first, with "(secret value)".
func (v *Redactor) Redact(text string) string {
	v.mu.Lock()
	vals := make([]string, 0, len(v.vals))
	for s := range v.vals {
		vals = append(vals, s)
	}
	v.mu.Unlock()
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	for _, s := range vals {
		text = strings.ReplaceAll(text, s, "(secret value)")
	}
	return text
}
