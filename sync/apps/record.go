package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"

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
	r.seen[ref.String()] = Input{Ref: ref, Version: s.Version, Hash: SecretHash(s)}
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

// checkParallel is how many inputs one check looks at at once.
const checkParallel = 8

// inputsChanged reports whether any of inputs reads differently now (a rotated secret).
// Where the backend names the version it read and can name the current one without the
// value (Vault KV v2 metadata, Secrets Manager's DescribeSecret, GCP's version resource),
// only the version is asked; otherwise the value is read again and its hash compared.
// Up to checkParallel inputs are looked at at once; the first change or error ends the
// check. It counts how each input was settled.
func (d *Daemon) inputsChanged(ctx context.Context, req RenderRequest, inputs []Input) (bool, error) {
	err := d.o.Inputs(ctx, req, func(ctx context.Context, s SecretReader) error {
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(checkParallel)
		for _, in := range inputs {
			g.Go(func() error {
				if ctx.Err() != nil {
					return nil // a change or an error was found already
				}
				if in.Version != "" {
					v, err := s.CurrentVersion(ctx, in.Ref)
					if err != nil {
						return err
					}
					if v != "" {
						d.m.secretChecks.WithLabelValues("version").Inc()
						if v != in.Version {
							return errChanged
						}
						return nil
					}
				}
				sec, err := s.Fetch(ctx, in.Ref)
				if err != nil {
					return err
				}
				d.m.secretChecks.WithLabelValues("value").Inc()
				if SecretHash(sec) != in.Hash {
					return errChanged
				}
				return nil
			})
		}
		return g.Wait()
	})
	if errors.Is(err, errChanged) {
		return true, nil
	}
	return err != nil, err
}

// errChanged ends a check at the first input that changed.
var errChanged = errors.New("an input changed")
