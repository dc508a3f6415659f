package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/keyway-dev/keyway/plugins/render"
)

// workerCommand is argv[1] of the process that builds one Helm chart or kustomization for a
// render (see render.Isolated). It is not a command a user runs, so main dispatches it
// before any flag parsing.
const workerCommand = "__build-worker"

// runBuildWorker is the build worker's main. The process takes the network away from
// itself first: kustomize fetches http(s) resources through http.DefaultTransport, and a
// worker has nothing else to reach. Its environment (no PATH, no credentials) is set by
// the parent.
func runBuildWorker(in io.Reader, out, errw io.Writer) int {
	http.DefaultTransport = noNetwork{}
	return render.ServeWorker(in, out, errw)
}

type noNetwork struct{}

func (noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("%s %s refused: keyway renders without network access", r.Method, r.URL.Redacted())
}

// builder is what every entry point that renders a repository builds charts and
// kustomizations with: a worker process per build, this executable.
func builder(maxMemory int64) render.Builder {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	return render.Isolated{Command: []string{exe, workerCommand}, MaxMemory: maxMemory}
}
