package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/sealing"
)

// Handler serves the unsealer's HTTP API:
//
//	GET  /healthz      200 once the key ring is readable
//	GET  /v1/cert.pem  the newest key's certificate, for keyway seal --cert / kubeseal --cert
//	POST /v1/verify    200 when the posted SealedSecret opens with the ring, 409 otherwise
//	POST /v1/rotate    the posted SealedSecret re-encrypted with the newest key
//	GET  /metrics      Prometheus metrics
//
// verify and rotate never render the Secret and are rate-limited (2 per second, burst 2).
func (u *Unsealer) Handler() http.Handler {
	mux := http.NewServeMux()
	limit := rate.NewLimiter(2, 2)
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
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		if _, _, _, ok := u.openPosted(w, r, limit); ok {
			_, _ = io.WriteString(w, "ok\n")
		}
	})
	mux.HandleFunc("POST /v1/rotate", func(w http.ResponseWriter, r *http.Request) {
		ss, _, keys, ok := u.openPosted(w, r, limit)
		if !ok {
			return
		}
		re, err := sealing.Reseal(rand.Reader, ss, privateKeys(keys), &keys[0].Private.PublicKey)
		if err != nil {
			http.Error(w, "re-encryption failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(re)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(u.opts.Registry, promhttp.HandlerOpts{}))
	return mux
}

// openPosted rate-limits, reads the posted SealedSecret and opens it with the ring; on any
// failure it has answered the request and returns ok=false. The opened Secret never leaves
// the process: verify only reports, rotate re-encrypts.
func (u *Unsealer) openPosted(w http.ResponseWriter, r *http.Request, limit *rate.Limiter) (*sealing.SealedSecret, *corev1.Secret, []*sealing.Key, bool) {
	if !limit.Allow() {
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return nil, nil, nil, false
	}
	ss, keys, ok := u.readSealed(w, r)
	if !ok {
		return nil, nil, nil, false
	}
	s, _, err := sealing.Unseal(rand.Reader, ss, privateKeys(keys))
	if err != nil {
		http.Error(w, "the SealedSecret does not open with this cluster's keys", http.StatusConflict)
		return nil, nil, nil, false
	}
	return ss, s, keys, true
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
