package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/parallel"
	"github.com/keyway-dev/keyway/plugins/helm"
	"github.com/keyway-dev/keyway/plugins/kustomize"
)

// BuildRequest asks for a Helm chart or a kustomization to be built into manifests.
type BuildRequest struct {
	Source string          // SourceHelm or SourceKustomize
	Dir    string          // the chart or kustomization
	Root   string          // nothing may be read from outside of it
	Helm   helm.Options    // for SourceHelm
	Limits manifest.Limits // bounds the input read and the output
}

// Built is one document of a build, in output order, before substitution: a build never
// sees a secret value.
type Built struct {
	Source string // the template or kustomization it came from
	Index  int    // its position in Source (-1: Text is a whole stream of documents)
	Text   string
}

// Builder builds charts and kustomizations. Build must stop when ctx ends.
type Builder interface {
	Build(ctx context.Context, req BuildRequest) ([]Built, error)
}

// InProcess builds in the calling process. Go code cannot be stopped from outside, so a
// build that outlives ctx returns ctx's error but runs on in the background, and kustomize
// may still run git or fetch a URL for a remote reference its file checks miss: use it for
// trusted input only. Isolated is the builder for repositories.
type InProcess struct{}

// Build implements Builder.
func (InProcess) Build(ctx context.Context, req BuildRequest) ([]Built, error) {
	type result struct {
		b   []Built
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := BuildNow(req)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, stopped(ctx, req)
	}
}

func stopped(ctx context.Context, req BuildRequest) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: stopped at the render's deadline (--timeout)", req.Source, req.Dir)
	}
	return fmt.Errorf("%s %s: stopped: %w", req.Source, req.Dir, context.Cause(ctx))
}

// BuildNow builds req in this goroutine, with no way to stop it: what a worker process runs.
func BuildNow(req BuildRequest) ([]Built, error) {
	switch req.Source {
	case SourceHelm:
		docs, err := helm.Render(req.Dir, req.Helm, req.Limits, nil)
		if err != nil {
			return nil, err
		}
		out := make([]Built, len(docs))
		for i, d := range docs {
			text, err := manifest.EncodeYAML(d)
			if err != nil {
				return nil, err
			}
			out[i] = Built{Source: d.Source, Index: d.Index, Text: string(text)}
		}
		return out, nil
	case SourceKustomize:
		stream, err := kustomize.Build(req.Dir, kustomize.Options{Root: req.Root, MaxBytes: req.Limits.WithDefaults().MaxStreamBytes})
		if err != nil {
			return nil, err
		}
		return []Built{{Source: req.Dir + " (" + SourceKustomize + ")", Index: -1, Text: string(stream)}}, nil
	}
	return nil, fmt.Errorf("source %q cannot be built", req.Source)
}

// Isolated builds each request in a worker process of its own (Command, which must end in
// ServeWorker) and kills it when the render's context ends. The worker starts with an
// environment of its own — no PATH, so kustomize finds no git to run; no credentials of
// this process — and ServeWorker's caller gives it no network, so a repository's chart or
// kustomization can run nothing, reach nothing, and read only its checkout; it stops itself
// beyond MaxMemory, and the operating system's out-of-memory killer picks it, not the
// sidecar.
type Isolated struct {
	Command   []string // argv of the worker: keyway's own executable and its worker command
	MaxMemory int64    // bytes of heap a build may use; default 1 GiB
}

// Build implements Builder.
func (w Isolated) Build(ctx context.Context, req BuildRequest) ([]Built, error) {
	if len(w.Command) == 0 {
		return nil, errors.New("no build worker command")
	}
	if err := ctx.Err(); err != nil {
		return nil, stopped(ctx, req)
	}
	in, err := json.Marshal(workerRequest{BuildRequest: req, MaxMemory: w.maxMemory()})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, w.Command[0], w.Command[1:]...)
	cmd.Env = []string{"PATH=", "HOME=/nonexistent", "GOMAXPROCS=" + fmt.Sprint(runtime.GOMAXPROCS(0))}
	cmd.Stdin = bytes.NewReader(in)
	limit := 2*req.Limits.WithDefaults().MaxStreamBytes + 1<<20
	kill := func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout := &capped{max: limit, over: func() { _ = kill() }}
	stderr := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = kill
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, stopped(ctx, req)
	case stdout.full:
		return nil, fmt.Errorf("%s %s: output is larger than %d bytes", req.Source, req.Dir, limit)
	case err != nil && strings.Contains(stderr.String(), "out of memory"):
		// The kernel refused an allocation past the hard limit: the runtime's report
		// (a goroutine dump) is not for the user.
		return nil, fmt.Errorf("%s %s: %w (%d MiB)", req.Source, req.Dir, errOutOfMemory, w.maxMemory()>>20)
	case err != nil:
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = fmt.Sprintf("the build worker failed: %v", err)
		}
		return nil, errors.New(msg)
	}
	var res []Built
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("%s %s: the build worker's answer: %w", req.Source, req.Dir, err)
	}
	return res, nil
}

func (w Isolated) maxMemory() int64 {
	if w.MaxMemory > 0 {
		return w.MaxMemory
	}
	return 1 << 30
}

type workerRequest struct {
	BuildRequest
	MaxMemory int64
}

// capped keeps the first max bytes written to it and calls over, once, when more arrive.
// It never fails a write: a copier that stopped reading would leave the worker blocked on a
// full pipe until the deadline. The buffer is a field, not embedded, so that io.Copy cannot
// reach bytes.Buffer's ReadFrom and bypass the bound.
type capped struct {
	buf  bytes.Buffer
	max  int64
	over func()
	full bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.full {
		return len(p), nil
	}
	if int64(c.buf.Len()+len(p)) > c.max {
		c.full = true
		if c.over != nil {
			c.over()
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) Bytes() []byte  { return c.buf.Bytes() }
func (c *capped) String() string { return c.buf.String() }

// ServeWorker is the build worker's main: it reads one BuildRequest from in, builds it and
// writes the documents to out as JSON, or an error message to errw and returns 1. It leaves
// the process when the heap passes the request's memory bound. The caller must first take
// the network away from this process (see Isolated).
func ServeWorker(in io.Reader, out, errw io.Writer) int {
	var req workerRequest
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req); err != nil {
		fmt.Fprintf(errw, "build worker: bad request: %v\n", err)
		return 1
	}
	if req.MaxMemory > 0 {
		if err := hardMemoryLimit(req.MaxMemory); err != nil {
			fmt.Fprintf(errw, "build worker: memory limit: %v\n", err)
			return 1
		}
		debug.SetMemoryLimit(req.MaxMemory)
		go watchMemory(req.MaxMemory, func() {
			fmt.Fprintf(errw, "%s %s: the build used more than its %d MiB of memory\n", req.Source, req.Dir, req.MaxMemory>>20)
			os.Exit(3)
		})
	}
	res, err := BuildNow(req.BuildRequest)
	if err != nil {
		fmt.Fprintln(errw, err)
		return 1
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		fmt.Fprintf(errw, "build worker: %v\n", err)
		return 1
	}
	return 0
}

// watchMemory calls over once the live heap passes limit, checking every 10 ms.
func watchMemory(limit int64, over func()) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for range time.Tick(10 * time.Millisecond) {
		metrics.Read(sample)
		if int64(sample[0].Value.Uint64()) > limit {
			over()
			return
		}
	}
}

// parseBuilt turns a build's documents into Documents, concurrently, calling each for every
// one as it is parsed; the order of the result is the build's.
func parseBuilt(built []Built, limits manifest.Limits, each func(*manifest.Document)) ([]*manifest.Document, error) {
	var docs []*manifest.Document
	single := make([]*manifest.Document, len(built))
	errs := make([]error, len(built))
	parallel.For(len(built), func(i int) {
		b := built[i]
		if b.Index < 0 {
			return
		}
		d, err := manifest.ParseDocument([]byte(b.Text), b.Source, b.Index, limits)
		single[i], errs[i] = d, err
		if d != nil && each != nil {
			each(d)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, b := range built {
		if b.Index >= 0 {
			if single[i] != nil {
				docs = append(docs, single[i])
			}
			continue
		}
		ds, err := manifest.ReadFunc(strings.NewReader(b.Text), b.Source, limits, each)
		if err != nil {
			return nil, err
		}
		docs = append(docs, ds...)
	}
	return docs, nil
}
