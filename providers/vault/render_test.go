package vault_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/providertest"
	"github.com/keyway-dev/keyway/providers/vault"
)

// renderWorkload writes distinct KV v2 secrets under secret/bench/ to the real Vault once
// and returns refs references over them.
func renderWorkload(t testing.TB, refs, distinct int) []byte {
	t.Helper()
	for s := range distinct {
		put(t, fmt.Sprintf("secret/data/bench/app%d", s), map[string]any{"data": map[string]any{"password": fmt.Sprintf("pw-%d", s)}})
	}
	return providertest.Workload(refs, distinct, func(i int) string { return fmt.Sprintf("<path:secret/data/bench/app%d#password>", i) })
}

func renderThrough(t testing.TB, addr string, input []byte) (render.Stats, []byte) {
	t.Helper()
	clients := providers.NewClients(providers.NewRegistry(vault.Provider{}), map[string]providers.Settings{
		"vault": {vault.SettingAddress: addr, vault.SettingToken: vlt.RootToken},
	}, nil)
	defer clients.Close()
	return providertest.Render(t, clients, "vault", input)
}

// TestOneReadPerSecret counts requests at a proxy in front of the real Vault: a render of
// 10,000 references over 500 secrets makes 500 reads and one mount lookup.
func TestOneReadPerSecret(t *testing.T) {
	input := renderWorkload(t, 10_000, 500)
	proxy, counts := countingProxy(t)
	stats, out := renderThrough(t, proxy, input)
	if reads := counts.prefix("/v1/secret/data/bench/"); reads != 500 {
		t.Fatalf("Vault reads = %d, want 500", reads)
	}
	if lookups := counts.prefix("/v1/sys/internal/ui/mounts/"); lookups != 1 {
		t.Fatalf("mount lookups = %d, want 1", lookups)
	}
	if stats.References != 10_000 || !bytes.Contains(out, []byte("k9999: pw-499")) {
		t.Fatalf("stats %+v; output tail %q", stats, out[len(out)-60:])
	}
}

// BenchmarkRenderVault renders the workload against the real Vault dev server and reports
// wall time per render and the process's peak RSS; the "counted" variant goes through a
// counting proxy (which costs time of its own) and reports Vault requests per render.
func BenchmarkRenderVault(b *testing.B) {
	input := renderWorkload(b, 10_000, 500)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			renderThrough(b, vlt.Addr, input)
		}
		b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
	})
	// Vault 1 ms away (a proxy that waits 1 ms before each request): the engine's bounded
	// concurrency hides most of the latency of the 500 distinct reads.
	b.Run("1ms-away", func(b *testing.B) {
		target, _ := url.Parse(vlt.Addr)
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond)
			rp.ServeHTTP(w, r)
		}))
		b.Cleanup(srv.Close)
		for b.Loop() {
			renderThrough(b, srv.URL, input)
		}
	})
	b.Run("counted", func(b *testing.B) {
		proxy, counts := countingProxy(b)
		for b.Loop() {
			renderThrough(b, proxy, input)
		}
		b.ReportMetric(float64(counts.prefix("/v1/secret/data/bench/"))/float64(b.N), "reads/render")
		b.ReportMetric(float64(counts.prefix("/v1/sys/internal/ui/mounts/"))/float64(b.N), "mount-lookups/render")
	})
}

// peakRSSMiB reads the test process's high-water resident set size.
func peakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
