package render_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
)

// benchInput builds docs documents holding refs references over distinct secrets, each
// secret with two keys, spread evenly.
func benchInput(docs, refs, distinct int) ([]byte, map[string]map[string]any) {
	var b bytes.Buffer
	perDoc := refs / docs
	n := 0
	for d := range docs {
		fmt.Fprintf(&b, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  labels: {team: shop, tier: backend}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/example/app:1.0.%d\n        env:\n", d, d)
		for range perDoc {
			s := n % distinct
			fmt.Fprintf(&b, "        - name: V%d\n          value: <path:secret/data/app%d#password>\n", n, s)
			n++
		}
	}
	secrets := make(map[string]map[string]any, distinct)
	for s := range distinct {
		secrets[fmt.Sprintf("secret/data/app%d", s)] = map[string]any{"password": fmt.Sprintf("pw-%d", s), "user": "u"}
	}
	return b.Bytes(), secrets
}

// peakHeap samples the live heap every 200µs until stopped (runtime/metrics does not stop
// the world) and returns the maximum seen.
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// BenchmarkRender is the workload: 1,000 documents, 10,000 references over 500
// distinct secrets, 1 ms per fetch. One op is bytes in → parse → fetch → substitute → bytes out.
func BenchmarkRender(b *testing.B) {
	input, secrets := benchInput(1000, 10_000, 500)
	f := &memFetcher{secrets: secrets, latency: time.Millisecond}
	engine := render.New(f, render.Options{DefaultBackend: "file"})
	var out bytes.Buffer
	runtime.GC()
	stop := peakHeap()
	b.ResetTimer()
	for b.Loop() {
		f.calls = nil
		sess := engine.Start(b.Context())
		docs, err := manifest.ReadFunc(bytes.NewReader(input), "bench.yaml", manifest.Limits{}, sess.Add)
		if err != nil {
			b.Fatal(err)
		}
		stats, err := sess.Finish(docs)
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		if err := manifest.Encode(&out, docs, manifest.YAML); err != nil {
			b.Fatal(err)
		}
		if stats.Fetches != 500 || stats.References != 10_000 || len(f.calls) != 500 {
			b.Fatalf("fetches %d (provider saw %d), references %d; want 500 and 10000", stats.Fetches, len(f.calls), stats.References)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(f.calls)), "fetches/render")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(len(input))/(1<<20), "input-MiB")
}

// FuzzRender feeds arbitrary manifests through read → render → encode: no panic, no hang,
// and a successful render must encode to YAML that parses again.
func FuzzRender(f *testing.F) {
	paths, _ := filepath.Glob("testdata/vectors/*.txtar")
	for _, p := range paths {
		f.Add(loadVector(f, p).files["input.yaml"])
	}
	secrets := map[string]map[string]any{
		"secret/data/app": {"password": "pw", "port": 5432, "obj": map[string]any{"k": "v"}, "json": `{"a":1}`},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		docs, err := manifest.Read(bytes.NewReader(in), "fuzz.yaml", manifest.Limits{MaxNodes: 100_000})
		if err != nil {
			return
		}
		fetcher := &memFetcher{secrets: secrets}
		if _, err := render.New(fetcher, render.Options{DefaultBackend: "file"}).Render(t.Context(), docs); err != nil {
			if strings.Contains(err.Error(), "pw") && !bytes.Contains(in, []byte("pw")) {
				t.Fatalf("error leaks a value: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := manifest.Encode(&out, docs, manifest.YAML); err != nil {
			return // e.g. an alias cycle the encoder refuses
		}
		if _, err := manifest.Read(bytes.NewReader(out.Bytes()), "out.yaml", manifest.Limits{}); err != nil {
			t.Fatalf("rendered output does not parse: %v\ninput:\n%s\noutput:\n%s", err, in, out.String())
		}
	})
}
