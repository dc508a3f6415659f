package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

var fleetApps = flag.Int("fleet-apps", 1000, "applications in BenchmarkDaemonFleet")

// BenchmarkDaemonFleet: the running daemon over a fleet — -fleet-apps applications (1,000)
// from one ApplicationSet, half on the hub and half on a spoke API server, one in ten
// never healthy (a Deployment with no kubelet to run it). It reports the time to the first
// sync of every healthy application, the time for a commit to reach one healthy application
// while the others wait, the API requests of an idle minute (reads and writes, both
// servers; writes must be 0), and the daemon's peak RSS.
//
//	go test ./cmd/keyway -run '^$' -bench DaemonFleet -benchtime 1x [-fleet-apps 200]
func BenchmarkDaemonFleet(b *testing.B) {
	ctx := b.Context()
	n := *fleetApps
	start := func() (*testenv.Env, kubernetes.Interface) {
		env, err := testenv.Start(ctx, testenv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { env.Stop() })
		return env, kubernetes.NewForConfigOrDie(env.Config)
	}
	hubEnv, hub := start()
	spokeEnv, spoke := start()
	_, _ = hub.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{})
	addSpoke(b, hub, spokeEnv, "spoke")

	dir := b.TempDir()
	self := buildRelease(b, dir)
	repo := filepath.Join(dir, "fleet")
	gitRun := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitOut := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("git %v: %v", args, err)
		}
		return string(out)
	}
	write := func(rel, content string) {
		p := filepath.Join(repo, rel)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	configMap := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: \"" + v + "\"}\n"
	}
	var elements []string
	stuck := 0
	for i := range n {
		cluster := "in-cluster"
		if i%2 == 1 {
			cluster = "spoke"
		}
		path := fmt.Sprintf("apps/app-%04d", i)
		if i%10 == 9 {
			path, stuck = "stuck", stuck+1
		} else {
			write(path+"/cm.yaml", configMap("1"))
		}
		elements = append(elements, fmt.Sprintf("{app: app-%04d, cluster: %s, path: %s}", i, cluster, path))
	}
	write("stuck/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n"+
		"    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: never:1}]\n")
	gitRun("init", "-q", "-b", "main")
	gitRun("add", "-A")
	gitRun("commit", "-q", "-m", "fleet")
	set := filepath.Join(dir, "set.yaml")
	_ = os.WriteFile(set, []byte(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fleet}
spec:
  generators: [{list: {elements: [`+strings.Join(elements, ", ")+`]}}]
  template:
    metadata: {name: '{{app}}'}
    spec:
      project: default
      source: {repoURL: `+repo+`, targetRevision: main, path: '{{path}}'}
      destination: {name: '{{cluster}}', namespace: '{{app}}'}
      syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	const interval = 10 * time.Second
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(dctx, self, "daemon", "--kubeconfig", hubEnv.Kubeconfig, "--app", set, "--cache-dir", filepath.Join(dir, "cache"),
		"--interval", interval.String(), "--leader-elect=false", "--status-addr", addr, "--wave-timeout", "30m", "--kube-qps", "200", "--kube-burst", "400")
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	counts := func(revision string) (healthy, waiting int) {
		resp, err := http.Get("http://" + addr + "/apps")
		if err != nil {
			return 0, 0
		}
		defer resp.Body.Close()
		var apps []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&apps)
		for _, a := range apps {
			switch {
			case a["sync"] == "Synced" && a["health"] == "Healthy" && (revision == "" || a["revision"] == revision):
				healthy++
			case a["operation"] != nil:
				waiting++
			}
		}
		return healthy, waiting
	}
	value := func(kube kubernetes.Interface, ns string) string {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["version"]
	}
	for b.Loop() {
		begin := time.Now()
		for {
			if h, w := counts(""); h == n-stuck && w == stuck {
				break
			}
			if time.Since(begin) > 30*time.Minute {
				h, w := counts("")
				b.Fatalf("after 30 min: %d healthy, %d waiting of %d\n%s", h, w, n, logs.String()[max(0, len(logs.String())-3000):])
			}
			time.Sleep(500 * time.Millisecond)
		}
		b.ReportMetric(time.Since(begin).Seconds(), "s/first-sync")

		// A commit for one healthy application on the spoke, while a tenth of the fleet waits.
		write("apps/app-0001/cm.yaml", configMap("2"))
		gitRun("commit", "-q", "-am", "app-0001 v2")
		committed := time.Now()
		for value(spoke, "app-0001") != "2" {
			if time.Since(committed) > 5*time.Minute {
				b.Fatal("the commit did not reach app-0001 in 5 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(time.Since(committed).Seconds(), "s/commit-to-applied")

		// Every healthy application records the new revision (an inventory write each: the
		// repository moved for all of them); then nothing is left to do.
		head := strings.TrimSpace(gitOut("rev-parse", "HEAD"))
		for h, _ := counts(head); h != n-stuck; h, _ = counts(head) {
			if time.Since(committed) > 10*time.Minute {
				b.Fatalf("%d of %d healthy applications at the new revision after 10 minutes", h, n-stuck)
			}
			time.Sleep(500 * time.Millisecond)
		}

		// An idle minute: reads and writes on both API servers.
		idle := time.Now()
		time.Sleep(time.Minute)
		reads, writes := 0, 0
		what := map[string]int{}
		for _, env := range []*testenv.Env{hubEnv, spokeEnv} {
			reqs, err := env.Requests(idle, "")
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range reqs {
				if !strings.HasPrefix(r.UserAgent, "keyway") || r.Time.After(idle.Add(time.Minute)) {
					continue
				}
				if r.IsWrite() && r.Resource != "leases" {
					writes++
					what[r.Verb+" "+r.Resource+" "+r.Namespace+"/"+r.Name]++
				} else if !r.IsWrite() {
					reads++
				}
			}
		}
		b.ReportMetric(float64(reads), "reads/idle-min")
		b.ReportMetric(float64(writes), "writes/idle-min")
		if writes != 0 {
			b.Errorf("%d writes in an idle minute, want 0: %v", writes, what)
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
		}
	}
}
