package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// BenchmarkDaemon measures `keyway daemon` on one application of 1,000 objects (900
// ConfigMaps, 100 Secrets each with a secret reference, file backend) against the real API
// server: the first sync (time, write requests, peak RSS), a no-op resync (write requests,
// which must be 0, and time), and the time from a hand edit to its revert by the running
// daemon (median of 10).
func BenchmarkDaemon(b *testing.B) {
	env, err := testenv.Start(b.Context(), testenv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ctx := b.Context()
	for _, ns := range []string{"keyway-system", "bench"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	self, peakrss := buildRelease(b, dir), buildPeakRSS(b, dir)
	repo := filepath.Join(dir, "repo")
	var secrets strings.Builder
	secrets.WriteString("secret/data/bench:\n")
	for f := range 10 {
		var doc strings.Builder
		for i := range 100 {
			n := f*100 + i
			if n%10 == 0 {
				fmt.Fprintf(&doc, "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s%d}\nstringData: {password: <path:secret/data/bench#k%d>}\n", n, n)
				fmt.Fprintf(&secrets, "  k%d: value-%d\n", n, n)
				continue
			}
			fmt.Fprintf(&doc, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d, labels: {app: bench}}\ndata: {index: \"%d\", payload: %s}\n", n, n, strings.Repeat("x", 200))
		}
		p := filepath.Join(repo, "app", fmt.Sprintf("part-%02d.yaml", f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(doc.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	g := gitWork{&testing.T{}, repo}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "bench"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = g.dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	sf := filepath.Join(dir, "secrets.yaml")
	app := filepath.Join(dir, "app.yaml")
	_ = os.WriteFile(sf, []byte(secrets.String()), 0o600)
	_ = os.WriteFile(app, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: bench}
spec:
  project: default
  source: {repoURL: `+repo+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: bench}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`), 0o644)
	args := []string{"daemon", "--kubeconfig", env.Kubeconfig, "--app", app, "--secrets-file", sf, "--cache-dir", filepath.Join(dir, "cache")}
	sync := func(b *testing.B, extra ...string) (time.Duration, int, int64) {
		usage := filepath.Join(dir, "usage")
		start := time.Now()
		cmd := exec.Command(peakrss, append([]string{usage, self}, append(append(args, "--once"), extra...)...)...)
		cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("daemon --once: %v\n%s", err, out)
		}
		took := time.Since(start)
		time.Sleep(500 * time.Millisecond) // the audit log is written asynchronously
		reqs, err := env.Requests(start, "keyway-daemon")
		if err != nil {
			b.Fatal(err)
		}
		writes := 0
		for _, r := range reqs {
			if r.IsWrite() {
				writes++
			}
		}
		_, _, rss := readUsage(b, usage)
		return took, writes, rss
	}

	// The first sync is bound by the client's rate limit (a dry run and an apply per
	// object): at the default --kube-qps 50 and at 400.
	for _, qps := range []string{"50", "400"} {
		b.Run("first-sync/1000/qps-"+qps, func(b *testing.B) {
			var took time.Duration
			var writes int
			var rss int64
			for b.Loop() {
				b.StopTimer()
				// Start from an empty namespace and no inventory.
				_ = kube.CoreV1().ConfigMaps("bench").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
				_ = kube.CoreV1().Secrets("bench").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
				_ = kube.CoreV1().ConfigMaps("keyway-system").Delete(ctx, "keyway-app-bench", metav1.DeleteOptions{})
				b.StartTimer()
				took, writes, rss = sync(b, "--kube-qps", qps, "--kube-burst", qps)
			}
			b.ReportMetric(took.Seconds(), "s/sync")
			b.ReportMetric(float64(writes), "writes")
			b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
		})
	}
	b.Run("noop-resync/1000", func(b *testing.B) {
		var took time.Duration
		var writes int
		var rss int64
		for b.Loop() {
			took, writes, rss = sync(b)
		}
		if writes != 0 {
			b.Fatalf("a no-op resync made %d write requests", writes)
		}
		b.ReportMetric(took.Seconds(), "s/sync")
		b.ReportMetric(float64(writes), "writes")
		b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
	})
	b.Run("drift-to-revert", func(b *testing.B) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cmd := exec.CommandContext(dctx, self, append(args, "--interval", "1h", "--leader-elect=false", "--status-addr", addr)...)
		var logs syncBuffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(logs.String(), "app=bench") { // the first sync's log line
			if time.Now().After(deadline) {
				b.Fatalf("no first sync:\n%s", logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		var lat []time.Duration
		for b.Loop() {
			for i := range 10 {
				name := fmt.Sprintf("c%d", 10*i+1)
				patch := []byte(`{"data":{"index":"tampered"}}`)
				start := time.Now()
				if _, err := kube.CoreV1().ConfigMaps("bench").Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
					b.Fatal(err)
				}
				for {
					cm, err := kube.CoreV1().ConfigMaps("bench").Get(ctx, name, metav1.GetOptions{})
					if err == nil && cm.Data["index"] != "tampered" {
						break
					}
					if time.Since(start) > time.Minute {
						b.Fatalf("%s not reverted in a minute", name)
					}
					time.Sleep(5 * time.Millisecond)
				}
				lat = append(lat, time.Since(start))
			}
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2].Seconds(), "s/revert-median")
		b.ReportMetric(lat[len(lat)-1].Seconds(), "s/revert-max")
	})
}
