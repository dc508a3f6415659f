package sealedsecrets

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/sealing"
)

// Handler serves the unsealer's HTTP API and its metrics:
//
//	GET  /healthz      200 once the key ring is readable
//	GET  /v1/cert.pem  the newest key's certificate, for keyway seal --cert / kubeseal --cert
//	POST /v1/verify    200 when every value of the posted SealedSecret opens with the ring
//	                   under its name, namespace and scope, 409 otherwise
//	POST /v1/rotate    the posted SealedSecret re-encrypted with the newest key
//	GET  /metrics      Prometheus metrics
//
// verify and rotate only decrypt: they never render spec.template, so the answer depends on
// the ciphertexts alone (AES-GCM authenticates them), never on the values they hold. Each
// client (by remote address) may make 2 such requests a second (burst 2), and at most
// apiConcurrency are decrypted at once; the others are answered 429 at once.
func (u *Unsealer) Handler() http.Handler {
	mux := u.api()
	mux.Handle("GET /metrics", u.MetricsHandler())
	return mux
}

// APIHandler is Handler without /metrics, for serving metrics on an address of their own.
func (u *Unsealer) APIHandler() http.Handler { return u.api() }

// MetricsHandler serves the Prometheus metrics.
func (u *Unsealer) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(u.opts.Registry, promhttp.HandlerOpts{})
}

// apiConcurrency is how many verify or rotate requests are decrypted at once.
const apiConcurrency = 2

func (u *Unsealer) api() *http.ServeMux {
	mux := http.NewServeMux()
	limit := newClientLimits(2, 2, apiConcurrency)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := u.Keys(); err != nil {
			http.Error(w, "key ring unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /v1/cert.pem", func(w http.ResponseWriter, _ *http.Request) {
		keys, err := u.Keys()
		if err != nil || len(keys) == 0 {
			http.Error(w, "no sealing key yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(keys[0].CertPEM)
	})
	mux.HandleFunc("POST /v1/verify", limit.wrap(func(w http.ResponseWriter, r *http.Request) {
		ss, keys, ok := u.readSealed(w, r)
		if !ok {
			return
		}
		if _, err := sealing.Check(rand.Reader, ss, privateKeys(keys)); err != nil {
			http.Error(w, "the SealedSecret does not open with this cluster's keys", http.StatusConflict)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	mux.HandleFunc("POST /v1/rotate", limit.wrap(func(w http.ResponseWriter, r *http.Request) {
		ss, keys, ok := u.readSealed(w, r)
		if !ok {
			return
		}
		re, err := sealing.Reseal(rand.Reader, ss, privateKeys(keys), &keys[0].Private.PublicKey)
		if errors.Is(err, sealing.ErrDecrypt) {
			http.Error(w, "the SealedSecret does not open with this cluster's keys", http.StatusConflict)
			return
		}
		if err != nil {
			http.Error(w, "re-encryption failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(re)
	}))
	return mux
}

// clientLimits rate-limits each client by remote address and bounds the requests in flight.
type clientLimits struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	clients map[string]*clientLimit
	slots   chan struct{}
}

type clientLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxClients bounds the table of clients; idle ones are swept when it fills.
const maxClients = 4096

func newClientLimits(every rate.Limit, burst, concurrency int) *clientLimits {
	return &clientLimits{every: every, burst: burst, clients: map[string]*clientLimit{}, slots: make(chan struct{}, concurrency)}
}

// wrap runs h only for a request admit lets in, holding its slot meanwhile.
func (c *clientLimits) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		release, ok := c.admit(w, r)
		if !ok {
			return
		}
		defer release()
		h(w, r)
	}
}

// admit answers 429 and returns ok=false when the client is over its rate or every slot
// is taken; otherwise the caller holds a slot until it calls release.
func (c *clientLimits) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := time.Now()
	c.mu.Lock()
	cl := c.clients[host]
	if cl == nil {
		if len(c.clients) >= maxClients {
			for k, v := range c.clients {
				if now.Sub(v.seen) > time.Minute {
					delete(c.clients, k)
				}
			}
		}
		if len(c.clients) < maxClients {
			cl = &clientLimit{lim: rate.NewLimiter(c.every, c.burst)}
			c.clients[host] = cl
		}
	}
	allowed := cl != nil && cl.lim.AllowN(now, 1)
	if cl != nil {
		cl.seen = now
	}
	c.mu.Unlock()
	if !allowed {
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return nil, false
	}
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, true
	default:
		http.Error(w, "busy: too many requests in flight", http.StatusTooManyRequests)
		return nil, false
	}
}

func (u *Unsealer) readSealed(w http.ResponseWriter, r *http.Request) (*sealing.SealedSecret, []*sealing.Key, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the request", http.StatusBadRequest)
		return nil, nil, false
	}
	var ss sealing.SealedSecret
	if err := yaml.Unmarshal(bytes.TrimSpace(body), &ss); err != nil || ss.Kind != sealing.Kind {
		http.Error(w, "the body is not a SealedSecret", http.StatusBadRequest)
		return nil, nil, false
	}
	keys, err := u.Keys()
	if err == nil && len(keys) == 0 {
		err = errors.New("empty ring")
	}
	if err != nil {
		http.Error(w, "key ring unavailable", http.StatusServiceUnavailable)
		return nil, nil, false
	}
	return &ss, keys, true
}
