package render_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
)

// memFetcher serves secrets from memory, optionally with latency, and counts fetches per ref.
type memFetcher struct {
	secrets               map[string]map[string]any
	errs                  map[string]error
	latency               time.Duration
	inFlight, maxInFlight atomic.Int64
	mu                    sync.Mutex
	calls                 map[providers.Ref]int
}

func (m *memFetcher) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	n := m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	for {
		cur := m.maxInFlight.Load()
		if n <= cur || m.maxInFlight.CompareAndSwap(cur, n) {
			break
		}
	}
	m.mu.Lock()
	if m.calls == nil {
		m.calls = map[providers.Ref]int{}
	}
	m.calls[ref]++
	m.mu.Unlock()
	if m.latency > 0 {
		select {
		case <-time.After(m.latency):
		case <-ctx.Done():
			return providers.Secret{}, ctx.Err()
		}
	}
	if err := m.errs[ref.Path]; err != nil {
		return providers.Secret{}, err
	}
	data, ok := m.secrets[ref.Path]
	if !ok {
		return providers.Secret{}, fmt.Errorf("%w: %s", providers.ErrNotFound, ref)
	}
	return providers.Secret{Data: data}, nil
}

func read(t testing.TB, in string) []*manifest.Document {
	t.Helper()
	docs, err := manifest.Read(strings.NewReader(in), "in.yaml", manifest.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestFetchOncePerDistinctSecret(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "---\nkind: A\nx: <path:s/%d#a>\ny: <path:s/%d#b> and <path:s/%d#a>\nz: ref+mem://s/%d#/a\n", i%5, i%5, i%5, i%5)
	}
	secrets := map[string]map[string]any{}
	for i := range 5 {
		secrets[fmt.Sprintf("s/%d", i)] = map[string]any{"a": "A", "b": "B"}
	}
	f := &memFetcher{secrets: secrets, latency: 5 * time.Millisecond}
	stats, err := render.New(f, render.Options{DefaultBackend: "mem", Concurrency: 3}).Render(t.Context(), read(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	// <path:s/N#…> and ref+mem://s/N are the same secret in the same backend: 5 distinct.
	if stats.Fetches != 5 || len(f.calls) != 5 {
		t.Fatalf("fetches = %d (calls %v), want 5", stats.Fetches, f.calls)
	}
	for ref, n := range f.calls {
		if n != 1 {
			t.Errorf("%s fetched %d times", ref, n)
		}
	}
	if stats.References != 200 {
		t.Fatalf("references = %d, want 200", stats.References)
	}
	if got := f.maxInFlight.Load(); got > 3 {
		t.Fatalf("%d fetches in flight, bound is 3", got)
	}
}

func TestCancelledRenderFails(t *testing.T) {
	f := &memFetcher{secrets: map[string]map[string]any{"s": {"k": "v"}}, latency: time.Minute}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := render.New(f, render.Options{DefaultBackend: "mem"}).Render(ctx, read(t, "v: <path:s#k>\n"))
	var rerr *render.Error
	if !errors.As(err, &rerr) {
		t.Fatalf("err = %v, want *render.Error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("render did not stop when its context ended")
	}
}

func TestMaxReferences(t *testing.T) {
	in := "a: <path:s#k>\nb: <path:s#k>\nc: <path:s#k>\n"
	_, err := render.New(&memFetcher{}, render.Options{DefaultBackend: "mem", MaxReferences: 2}).Render(t.Context(), read(t, in))
	if err == nil || !strings.Contains(err.Error(), "more than 2 references") {
		t.Fatalf("err = %v, want the reference cap", err)
	}
}

// TestCanaryNeverLeaks drives every failure path with values that carry a canary, and checks
// the error and debug logs.
func TestCanaryNeverLeaks(t *testing.T) {
	const canary = "CANARY-d41d8c"
	secrets := map[string]map[string]any{
		"app": {
			"pw":      canary + "-pw",
			"notb64":  canary + "*",
			"notjson": "{" + canary,
			"notyaml": "a: [" + canary,
			"obj":     map[string]any{"k": canary},
			"num":     42,
		},
	}
	errs := map[string]error{
		"denied": fmt.Errorf("%w: reading app/denied", providers.ErrPermissionDenied),
		"down":   fmt.Errorf("%w: connection refused", providers.ErrUnavailable),
	}
	in := `kind: ConfigMap
metadata: {name: c}
data:
  a: <path:app#pw | base64decode>
  b: <path:app#notb64 | base64decode>
  c: <path:app#notjson | jsonParse>
  d: <path:app#notyaml | yamlParse>
  e: <path:app#obj | jsonPath {.nope}>
  f: <path:app#obj | base64encode>
  g: <path:app#num | sha256sum>
  h: <path:denied#k>
  i: <path:down#k>
  j: <path:app#missing>
  k: <path:app#notjson | jsonPath {.x}>
  l: <path:app#pw | indent 2 | jsonParse>
`
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &memFetcher{secrets: secrets, errs: errs}
	_, err := render.New(f, render.Options{DefaultBackend: "mem", Logger: log}).Render(t.Context(), read(t, in))
	var rerr *render.Error
	if !errors.As(err, &rerr) {
		t.Fatalf("err = %v, want *render.Error", err)
	}
	if len(rerr.Problems) != 12 {
		t.Fatalf("%d problems, want 12:\n%v", len(rerr.Problems), err)
	}
	for _, want := range []string{"permission denied", "backend unreachable", "key missing", "not valid JSON", "not valid YAML", "does not match", "want a string"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(err.Error(), canary) {
		t.Fatalf("error leaks a secret value:\n%v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"fetched"`) || strings.Contains(logs.String(), canary) {
		t.Fatalf("debug logs missing or leaking:\n%s", logs.String())
	}
}

// TestYAML11WordsStayStrings: a substituted string that a YAML 1.1 reader (sigs.k8s.io/yaml,
// as Argo CD and kubectl read manifests) would take for a boolean, a number or null comes
// back as that string, whether the document is spliced in place or re-encoded (a multi-line
// value elsewhere forces re-encoding), in YAML and JSON output.
func TestYAML11WordsStayStrings(t *testing.T) {
	words := []string{"yes", "no", "on", "off", "y", "n", "Yes", "NO", "true", "null", "~", "0x1F", "1e3", "0777", "12:30", ""}
	for _, multiline := range []bool{false, true} {
		var in strings.Builder
		in.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n")
		data := map[string]any{"multi": "line one\nline two"}
		for i, w := range words {
			fmt.Fprintf(&in, "  k%d: <path:s#w%d>\n", i, i)
			data[fmt.Sprintf("w%d", i)] = w
		}
		if multiline {
			in.WriteString("  multi: <path:s#multi>\n")
		}
		docs := read(t, in.String())
		f := &memFetcher{secrets: map[string]map[string]any{"s": data}}
		if _, err := render.New(f, render.Options{DefaultBackend: "mem"}).Render(t.Context(), docs); err != nil {
			t.Fatal(err)
		}
		for _, format := range []manifest.Format{manifest.YAML, manifest.JSON} {
			var out bytes.Buffer
			if err := manifest.Encode(&out, docs, format); err != nil {
				t.Fatal(err)
			}
			var cm struct {
				Data map[string]string `json:"data"`
			}
			if err := sigsyaml.Unmarshal(out.Bytes(), &cm); err != nil {
				t.Fatalf("multiline=%v %s: %v\n%s", multiline, format, err, out.String())
			}
			for i, w := range words {
				if got := cm.Data[fmt.Sprintf("k%d", i)]; got != w {
					t.Errorf("multiline=%v %s: %q read back as %q\n%s", multiline, format, w, got, out.String())
				}
			}
		}
	}
}

// TestHugeReferenceShortError: a 6 MB placeholder yields an error of a few hundred bytes.
func TestHugeReferenceShortError(t *testing.T) {
	for name, ref := range map[string]string{
		"path":     "<path:" + strings.Repeat("a", 6<<20) + "#k>",
		"modifier": "<path:secret/data/x#k | " + strings.Repeat("b", 6<<20) + ">",
		"uri":      "ref+vault://" + strings.Repeat("c", 6<<20) + "#/k",
	} {
		docs := read(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: '"+ref+"'}\n")
		_, err := render.New(&memFetcher{}, render.Options{DefaultBackend: "mem"}).Render(t.Context(), docs)
		if err == nil {
			t.Fatalf("%s: rendered", name)
		}
		if n := len(err.Error()); n > 2000 {
			t.Fatalf("%s: a %d-byte error", name, n)
		}
	}
}
