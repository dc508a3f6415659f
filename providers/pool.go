package providers

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// Pool shares open clients between the renders of a long-lived process (keyway argocd
// serve): renders with equal settings for a backend use one client, so Vault is logged into
// once per configuration, not once per request, and the client's token renewal serves all
// of them. Settings are compared by an HMAC under a key made at start and held only in
// memory; a render with other settings (another project's role) gets its own client and
// never another's token. A client unused for the idle time is closed (Vault revokes the
// token it logged in for), and Close closes the rest.
type Pool struct {
	reg  *Registry
	log  *slog.Logger
	idle time.Duration
	key  []byte

	mu      sync.Mutex
	entries map[string]*poolEntry
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

type poolEntry struct {
	ready   chan struct{} // closed once client or err is set
	client  Client
	err     error
	refs    int
	last    time.Time
	backend string
}

// NewPool returns a pool for reg's providers; idle ≤ 0 means 10 minutes.
func NewPool(reg *Registry, log *slog.Logger, idle time.Duration) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	p := &Pool{reg: reg, log: log, idle: idle, key: key, entries: map[string]*poolEntry{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.reap()
	return p
}

// Clients returns a set of clients for one render, drawn from the pool. Its Close hands the
// clients back; they stay open for the next render.
func (p *Pool) Clients(settings map[string]Settings) *Clients {
	c := NewClients(p.reg, settings, p.log)
	c.pool = p
	return c
}

// Open reports how many clients the pool holds open.
func (p *Pool) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Principal names who a backend's settings authenticate as, for sharing what they read:
// equal settings (credentials included) give equal principals; the value is an HMAC under
// the pool's in-memory key and reveals nothing of the settings.
func (p *Pool) Principal(backend string, s Settings) string { return p.fingerprint(backend, s) }

func (p *Pool) fingerprint(backend string, s Settings) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(backend))
	for _, k := range slices.Sorted(maps.Keys(s)) {
		m.Write([]byte{0})
		m.Write([]byte(k))
		m.Write([]byte{'='})
		m.Write([]byte(s[k]))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// acquire returns the pooled client for backend with settings s, opening it on first use.
func (p *Pool) acquire(ctx context.Context, prov Provider, backend string, s Settings) (Client, *poolEntry, error) {
	key := p.fingerprint(backend, s)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, errors.New("providers: pool closed")
	}
	e, ok := p.entries[key]
	if ok {
		e.refs++
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			p.release(e)
			return nil, nil, ctx.Err()
		}
		if e.err != nil {
			p.release(e)
			return nil, nil, e.err
		}
		return e.client, e, nil
	}
	e = &poolEntry{ready: make(chan struct{}), refs: 1, backend: backend}
	p.entries[key] = e
	p.mu.Unlock()
	e.client, e.err = prov.Open(ctx, Config{Settings: s, Logger: p.log.With("backend", backend)})
	if e.err != nil {
		// Not kept: the next render tries again.
		p.mu.Lock()
		delete(p.entries, key)
		p.mu.Unlock()
	}
	close(e.ready)
	if e.err != nil {
		return nil, nil, e.err
	}
	return e.client, e, nil
}

func (p *Pool) release(e *poolEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.refs--
	e.last = time.Now()
}

// reap closes clients nobody has used for the idle time.
func (p *Pool) reap() {
	defer close(p.done)
	t := time.NewTicker(max(p.idle/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		var idle []*poolEntry
		p.mu.Lock()
		for k, e := range p.entries {
			select {
			case <-e.ready:
			default:
				continue // still opening
			}
			if e.refs == 0 && time.Since(e.last) >= p.idle {
				delete(p.entries, k)
				idle = append(idle, e)
			}
		}
		p.mu.Unlock()
		for _, e := range idle {
			p.log.Info("closing an idle backend client", "backend", e.backend)
			_ = e.client.Close()
		}
	}
}

// Close closes every pooled client (Vault revokes the tokens it logged in for). Renders
// still holding one should have finished: the process is shutting down.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	all := slices.Collect(maps.Values(p.entries))
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	var errs []error
	for _, e := range all {
		<-e.ready
		if e.client != nil {
			errs = append(errs, e.client.Close())
		}
	}
	return errors.Join(errs...)
}
