package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	"github.com/keyway-dev/keyway/providers"
)

// Recorder is a render's fetcher that notes what each secret read returned (a hash, in
// memory only), so a later poll can tell whether any secret changed without rendering again.
type Recorder struct {
	*providers.Clients

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
