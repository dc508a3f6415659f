package render

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/internal/manifest"
)

// The worker is exercised through stand-in commands here; cmd/keyway's TestHostileRepository
// runs the real one.

// TestIsolatedEnvironment: the worker gets no PATH and nothing of this process's
// environment (where backend credentials live).
func TestIsolatedEnvironment(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "CANARY-token")
	w := Isolated{Command: []string{"/bin/sh", "-c", `/usr/bin/env >&2; exit 1`}}
	_, err := w.Build(t.Context(), BuildRequest{Source: SourceHelm, Dir: "chart"})
	if err == nil {
		t.Fatal("the stand-in worker failed, Build did not")
	}
	env := err.Error() // the worker's stderr is the error
	if strings.Contains(env, "CANARY") || strings.Contains(env, "VAULT_TOKEN") {
		t.Fatalf("the worker inherited this process's environment:\n%s", env)
	}
	for _, kv := range strings.Fields(env) {
		if strings.HasPrefix(kv, "PATH=") && kv != "PATH=" {
			t.Fatalf("the worker has a PATH: %s", kv)
		}
	}
	if !strings.Contains(env, "HOME=/nonexistent") {
		t.Fatalf("not the worker's own environment:\n%s", env)
	}
}

// TestIsolatedStops: a worker that outlives the deadline is killed with its children,
// and Build returns at once.
func TestIsolatedStops(t *testing.T) {
	pidFile := t.TempDir() + "/pid"
	w := Isolated{Command: []string{"/bin/sh", "-c", `/bin/sleep 60 & echo $! > ` + pidFile + `; wait`}}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.Build(ctx, BuildRequest{Source: SourceHelm, Dir: "chart"})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Build returned after %v", d)
	}
	pid, _ := os.ReadFile(pidFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone (or a zombie awaiting its reaper)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's child %s still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIsolatedOutputBound: a worker writing more than the bound is stopped at once with an
// error naming the bound, not left blocked on its pipe until the deadline.
func TestIsolatedOutputBound(t *testing.T) {
	w := Isolated{Command: []string{"/bin/sh", "-c", `while :; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; done`}}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := w.Build(ctx, BuildRequest{Source: SourceHelm, Dir: "chart", Limits: manifest.Limits{MaxStreamBytes: 1000}})
	if err == nil || !strings.Contains(err.Error(), "output is larger than") {
		t.Fatalf("err = %v, want the output bound", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Build returned after %v", d)
	}
}

// TestInputBudget: the plain files of all the paths of a render share one byte budget.
func TestInputBudget(t *testing.T) {
	dir := t.TempDir()
	doc := "kind: A\nv: " + strings.Repeat("x", 600) + "\n"
	var paths []string
	for _, n := range []string{"a.yaml", "b.yaml"} {
		p := dir + "/" + n
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	limits := manifest.Limits{MaxStreamBytes: 1000}
	if _, err := Load(t.Context(), paths[:1], nil, limits, nil); err != nil {
		t.Fatalf("one file under the budget: %v", err)
	}
	for name, args := range map[string][]string{"two paths": paths, "one directory": {dir}} {
		if _, err := Load(t.Context(), args, nil, limits, nil); err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes in all") {
			t.Errorf("%s over the budget: err = %v", name, err)
		}
	}
}

// TestIsolatedOutOfMemory: a worker the kernel stopped at its hard limit is reported by
// its limit, not with the runtime's goroutine dump.
func TestIsolatedOutOfMemory(t *testing.T) {
	w := Isolated{Command: []string{"/bin/sh", "-c", `echo "fatal error: runtime: out of memory" >&2; echo "goroutine 1 [running]: CANARY" >&2; exit 2`}}
	_, err := w.Build(t.Context(), BuildRequest{Source: SourceHelm, Dir: "chart"})
	if err == nil || !strings.Contains(err.Error(), "the build used more than its memory (1024 MiB)") || strings.Contains(err.Error(), "CANARY") {
		t.Fatalf("err = %v", err)
	}
}

// TestHardMemoryLimit: past the hard limit one huge allocation fails at once (the heap
// watchdog samples every 10 ms and could be too late). Race builds keep the watchdog only:
// run this with `go test ./plugins/render -run TestHardMemoryLimit` (no -race).
func TestHardMemoryLimit(t *testing.T) {
	if os.Getenv("KEYWAY_TEST_HARD_LIMIT") == "1" {
		if err := hardMemoryLimit(64 << 20); err != nil {
			os.Exit(5)
		}
		s := strings.Repeat("x", 1500<<20)
		os.Stdout.WriteString("survived " + s[:1])
		os.Exit(0)
	}
	if raceEnabled {
		t.Skip("race builds map shadow memory the limit would count; run without -race")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHardMemoryLimit$")
	cmd.Env = append(os.Environ(), "KEYWAY_TEST_HARD_LIMIT=1")
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "survived") || !strings.Contains(string(out), "out of memory") {
		t.Fatalf("a 1.5 GB allocation under a 64 MiB limit: %v\n%.2000s", err, out)
	}
}
