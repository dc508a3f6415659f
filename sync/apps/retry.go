package apps

import (
	"context"
	"time"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// Argo CD's retry back-off defaults.
const (
	defaultBackoff     = 5 * time.Second
	defaultFactor      = 2
	defaultMaxDuration = 3 * time.Minute
)

// backoff is the wait before retry attempt n (1-based) under a's retry policy, and
// whether attempt n is allowed at all (retry.limit: 0 none, negative unlimited).
func backoff(a *v1alpha1.Application, n int) (time.Duration, bool) {
	if a.Spec.SyncPolicy == nil || a.Spec.SyncPolicy.Retry == nil {
		return 0, false
	}
	r := a.Spec.SyncPolicy.Retry
	if r.Limit >= 0 && int64(n) > r.Limit {
		return 0, false
	}
	wait, factor, max := defaultBackoff, int64(defaultFactor), defaultMaxDuration
	if b := r.Backoff; b != nil {
		if d, err := time.ParseDuration(b.Duration); err == nil && d > 0 {
			wait = d
		} else if s, err := time.ParseDuration(b.Duration + "s"); err == nil && s > 0 {
			wait = s // Argo CD takes a bare number as seconds
		}
		if b.Factor != nil && *b.Factor > 0 {
			factor = *b.Factor
		}
		if d, err := time.ParseDuration(b.MaxDuration); err == nil && d > 0 {
			max = d
		}
	}
	for i := 1; i < n && wait < max; i++ {
		wait *= time.Duration(factor)
	}
	return min(wait, max), true
}

// syncRetrying syncs a, retrying a failed sync inline under its retry policy (an explicit
// sync, which waits for its result). A held or refused-empty sync is not retried: only
// the operator can change its outcome.
func (d *Daemon) syncRetrying(ctx context.Context, a *v1alpha1.Application, parent string, root bool, t Trigger, seen map[string]bool) *Status {
	st := d.syncApp(ctx, a, parent, root, t, seen)
	for n := 1; t == Explicit && st.failed && !st.final; n++ {
		wait, ok := backoff(a, n)
		if !ok {
			break
		}
		d.log.Info("sync failed: retrying", "app", a.Name, "attempt", n, "after", wait)
		select {
		case <-ctx.Done():
			return st
		case <-time.After(wait):
		}
		st = d.syncApp(ctx, a, parent, root, t, seen)
	}
	return st
}

// scheduleRetry notes when a failed application is due again (Poll: the Run loop picks it
// up), or forgets it after a success.
func (d *Daemon) scheduleRetry(a *v1alpha1.Application, st *Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !st.failed || st.final {
		delete(d.retries, a.Name)
		return
	}
	r := d.retries[a.Name]
	r.attempt++
	wait, ok := backoff(a, r.attempt)
	if !ok {
		delete(d.retries, a.Name)
		return
	}
	r.at = time.Now().Add(wait)
	d.retries[a.Name] = r
}

type retryState struct {
	attempt int
	at      time.Time
}

// dueRetries returns the applications whose retry time has come.
func (d *Daemon) dueRetries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	now := time.Now()
	for name, r := range d.retries {
		if !r.at.IsZero() && now.After(r.at) {
			out = append(out, name)
			r.at = time.Time{} // in flight; scheduleRetry sets the next
			d.retries[name] = r
		}
	}
	return out
}
