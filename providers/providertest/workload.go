package providertest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
)

// Workload is the render workload the providers' tests and benchmarks share: refs
// references, ten to a ConfigMap, the i-th naming secret i mod distinct through ref (which
// spells the placeholder for the backend, e.g. "<path:prod/app%d#password>").
func Workload(refs, distinct int, ref func(secret int) string) []byte {
	var b bytes.Buffer
	for i := range refs {
		if i%10 == 0 {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%d\ndata:\n", i)
		}
		fmt.Fprintf(&b, "  k%d: %s\n", i, ref(i%distinct))
	}
	return b.Bytes()
}

// Render renders input through f as keyway render does (fetches start while documents are
// still being parsed) and returns the stats and the YAML output.
func Render(t testing.TB, f render.Fetcher, defaultBackend string, input []byte) (render.Stats, []byte) {
	t.Helper()
	sess := render.New(f, render.Options{DefaultBackend: defaultBackend}).Start(t.Context())
	docs, err := manifest.ReadFunc(bytes.NewReader(input), "workload.yaml", manifest.Limits{}, sess.Add)
	if err != nil {
		_, _ = sess.Finish(nil)
		t.Fatal(err)
	}
	stats, err := sess.Finish(docs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := manifest.Encode(&out, docs, manifest.YAML); err != nil {
		t.Fatal(err)
	}
	return stats, out.Bytes()
}
