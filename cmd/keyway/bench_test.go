package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sealing"
)

// buildRelease builds keyway into dir the way the release image does (examples/argocd/
// Dockerfile: static, stripped), so figures are those of the binary users run.
func buildRelease(b *testing.B, dir string) string {
	self := filepath.Join(dir, "keyway")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", self, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return self
}

// buildPeakRSS builds the helper that measures a child's own CPU time and peak RSS (see
// testdata/peakrss: measured from this process, a child would inherit its RSS).
func buildPeakRSS(b *testing.B, dir string) string {
	p := filepath.Join(dir, "peakrss")
	if out, err := exec.Command("go", "build", "-o", p, "./testdata/peakrss").CombinedOutput(); err != nil {
		b.Fatalf("go build peakrss: %v\n%s", err, out)
	}
	return p
}

// readUsage reads what peakrss wrote: user and system CPU time, and peak RSS in KiB.
func readUsage(b *testing.B, path string) (user, sys time.Duration, rssKiB int64) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var u, s int64
	if _, err := fmt.Sscan(string(data), &u, &s, &rssKiB); err != nil {
		b.Fatalf("peakrss output %q: %v", data, err)
	}
	return time.Duration(u), time.Duration(s), rssKiB
}

// benchChart writes a repository holding a Helm chart of 50 Deployment templates with 100
// references, and the file backend's secrets for them; it returns the chart directory and
// the secrets file.
func benchChart(b *testing.B, dir string) (chart, sf string) {
	chart = filepath.Join(dir, "repo", "apps", "chart")
	if err := os.MkdirAll(filepath.Join(chart, "templates"), 0o755); err != nil {
		b.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: big\nversion: 1.0.0\n")
	write(filepath.Join(chart, "values.yaml"), "replicas: 2\nimage: app:1.0\n")
	secrets := ""
	for i := range 50 {
		secrets += fmt.Sprintf("secret/data/app%d: {user: u%d, password: p%d}\n", i, i, i)
		write(filepath.Join(chart, "templates", fmt.Sprintf("t%02d.yaml", i)), fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-%d
  labels: {app: {{ .Chart.Name }}, index: "%d"}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: x%d}}
  template:
    metadata: {labels: {app: x%d}}
    spec:
      containers:
      - name: app
        image: {{ .Values.image }}
        env:
        - {name: USER, value: "<path:secret/data/app%d#user>"}
        - {name: PASSWORD, value: "<path:secret/data/app%d#password>"}
`, i, i, i, i, i, i))
	}
	sf = filepath.Join(dir, "secrets.yaml")
	write(sf, secrets)
	return chart, sf
}

// BenchmarkArgoCDGenerate runs `keyway argocd generate` as Argo CD's cmp-server would, on a
// Helm chart of 50 templates holding 100 references (file backend, so no backend latency),
// and reports the child process's CPU time and peak RSS per generate.
func BenchmarkArgoCDGenerate(b *testing.B) {
	dir := b.TempDir()
	chart, sf := benchChart(b, dir)
	// Measure the real binary, not the test binary that stands in for it in scripts.
	self := buildRelease(b, dir)
	measure := buildPeakRSS(b, dir)
	usage := filepath.Join(dir, "usage")
	var cpu time.Duration
	var maxRSS int64
	for b.Loop() {
		cmd := exec.Command(measure, usage, self, "argocd", "generate")
		cmd.Dir = chart
		cmd.Env = []string{"KEYWAY_SECRETS_FILE=" + sf, "ARGOCD_APP_NAME=big", "ARGOCD_APP_NAMESPACE=apps", "ARGOCD_APP_SOURCE_PATH=apps/chart"}
		out, err := cmd.Output()
		if err != nil || len(out) == 0 {
			b.Fatalf("generate: %v", err)
		}
		u, s, rss := readUsage(b, usage)
		cpu += u + s
		maxRSS = max(maxRSS, rss)
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/generate")
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
}

// BenchmarkArgoCDServe is BenchmarkArgoCDGenerate with keyway serving the plugin socket
// itself (`keyway argocd serve`): each generate is a request from Argo CD's own client code,
// sending the repository as the repo-server does. It reports the server's CPU time per
// generate (from /proc, all threads) and its peak RSS; the client's cost is the repo-server's.
// "kept" is the usual case, the repository already unpacked by an earlier request for the
// same revision; "unpacked" unpacks it for every request (--keep-repos -1) into a memory file
// system (/dev/shm, as an emptyDir with medium: Memory), "unpacked-disk" into the benchmark's
// temporary directory (on ext4, creating and deleting the files costs more than rendering them).
func BenchmarkArgoCDServe(b *testing.B) {
	b.Run("kept", func(b *testing.B) { benchServe(b, "8", "") })
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		b.Run("unpacked", func(b *testing.B) {
			shm, err := os.MkdirTemp("/dev/shm", "keyway-bench-")
			if err != nil {
				b.Skip(err)
			}
			defer os.RemoveAll(shm)
			benchServe(b, "-1", shm)
		})
	}
	b.Run("unpacked-disk", func(b *testing.B) { benchServe(b, "-1", "") })
}

func benchServe(b *testing.B, keep, workDir string) {
	client, err := testenv.Binary("argocd-cmpclient")
	if err != nil {
		b.Skip(err) // built by make testenv
	}
	dir := b.TempDir()
	chart, sf := benchChart(b, dir)
	self := buildRelease(b, dir)
	socket := filepath.Join(dir, "keyway-v1.sock")
	if workDir == "" {
		workDir = dir
	}
	srv, _ := startServe(b, self, socket, []string{"KEYWAY_SECRETS_FILE=" + sf, "HOME=" + dir}, "--work-dir", workDir, "--keep-repos", keep)
	repo := filepath.Join(dir, "repo")
	generate := func() {
		cmd := exec.Command(client, "-generate-only", "-socket", socket, "-repo", repo, "-app", chart,
			"-env", "ARGOCD_APP_NAME=big", "-env", "ARGOCD_APP_NAMESPACE=apps", "-env", "ARGOCD_APP_SOURCE_PATH=apps/chart")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), `"manifests":[`) || strings.Contains(string(out), "generateError") {
			b.Fatalf("generate: %v\n%s", err, out)
		}
	}
	generate() // the first request pays for the code it touches first
	before := procCPU(b, srv.Process.Pid)
	for b.Loop() {
		generate()
	}
	cpu := procCPU(b, srv.Process.Pid) - before
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/generate")
	b.ReportMetric(float64(procHWM(b, srv.Process.Pid))/1024, "peak-RSS-MiB")
}

// procCPU is a process's CPU time so far: the sum over its threads of the nanoseconds each
// has run (/proc/PID/task/*/schedstat), finer than the 10 ms ticks of /proc/PID/stat. Go
// keeps its threads, so none that ran is missing from the sum.
func procCPU(b *testing.B, pid int) time.Duration {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no threads of %d: %v", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			b.Fatal(err)
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err != nil {
			b.Fatalf("%s: %v", t, err)
		}
		total += time.Duration(ns)
	}
	// Plus the build workers it has started and waited for (cutime and cstime, in clock
	// ticks of 10 ms): their CPU is the sidecar's too.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	for _, f := range fields[13:15] { // after ") ": state is 0, so utime 11, stime 12, cutime 13, cstime 14
		var ticks int64
		fmt.Sscan(f, &ticks)
		total += time.Duration(ticks) * 10 * time.Millisecond
	}
	return total
}

// procHWM is a process's peak RSS in KiB.
func procHWM(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(v, &kib)
			return kib
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// BenchmarkSealProcess seals 1,000 and 10,000 Secrets of 5 keys with an RSA-4096
// certificate as one multi-document input, timing the whole `keyway seal` process and
// reporting its peak RSS (and upstream kubeseal's on the same input, when it is built).
// keyway streams: its memory should not grow with the input.
func BenchmarkSealProcess(b *testing.B) {
	dir := b.TempDir()
	self, peakrss := buildRelease(b, dir), buildPeakRSS(b, dir)
	_, certPEM, err := sealing.GenerateKey(rand.Reader, 4096, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1000, 10000} {
		var in strings.Builder
		for i := range n {
			fmt.Fprintf(&in, "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s%d, namespace: app}\nstringData: {a: v%d, b: v%d, c: v%d, d: v%d, e: v%d}\n", i, i, i, i, i, i)
		}
		input := filepath.Join(dir, fmt.Sprintf("in-%d.yaml", n))
		if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, name string, args ...string) {
			var peak int64
			usage := filepath.Join(dir, "usage")
			for b.Loop() {
				cmd := exec.Command(peakrss, append([]string{usage, name}, args...)...)
				cmd.Env = []string{"HOME=" + dir, "KUBECONFIG=" + filepath.Join(dir, "none")}
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%s: %v\n%s", name, err, out)
				}
				_, _, rss := readUsage(b, usage)
				peak = max(peak, rss)
			}
			b.ReportMetric(float64(n)/(float64(b.Elapsed().Seconds())/float64(b.N)), "secrets/s")
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		}
		b.Run(fmt.Sprintf("keyway/%d", n), func(b *testing.B) {
			run(b, self, "seal", "--cert", cert, "-f", input, "-w", filepath.Join(dir, "out.json"))
		})
		if kubeseal, err := testenv.Binary("kubeseal"); err == nil {
			b.Run(fmt.Sprintf("kubeseal-v0.27.1/%d", n), func(b *testing.B) {
				run(b, kubeseal, "--cert", cert, "--secret-file", input, "--sealed-secret-file", filepath.Join(dir, "up.json"))
			})
		}
	}
}

// BenchmarkStartup: what a short command pays before doing anything — `keyway version`, and
// a one-document render from the file backend — as whole release-build processes: wall
// time, CPU time and peak RSS per run.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	self, peakrss := buildRelease(b, dir), buildPeakRSS(b, dir)
	sf := filepath.Join(dir, "secrets.yaml")
	doc := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(sf, []byte("secret/data/app: {password: p}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(doc, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {p: <path:secret/data/app#password>}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	usage := filepath.Join(dir, "usage")
	for name, args := range map[string][]string{
		"version": {"version"},
		"render":  {"render", "--secrets-file", sf, doc},
	} {
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			var peak int64
			for b.Loop() {
				cmd := exec.Command(peakrss, append([]string{usage, self}, args...)...)
				cmd.Env = []string{"HOME=" + dir}
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
				u, s, rss := readUsage(b, usage)
				cpu += u + s
				peak = max(peak, rss)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "wall-ms/run")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/run")
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		})
	}
}
