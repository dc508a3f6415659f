package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestDaemonShards runs three daemons with --shard over six applications: once settled each
// application is synced by exactly one replica, and when one replica is killed the others
// take its applications over.
func TestDaemonShards(t *testing.T) {
	ctx := t.Context()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	kube := kubernetes.NewForConfigOrDie(env.Config)
	for _, ns := range []string{"keyway-system", "shard"} {
		_, _ = kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	}
	work := t.TempDir()
	g := gitWork{t, filepath.Join(work, "repo")}
	_ = os.MkdirAll(g.dir, 0o755)
	g.git("init", "-q", "-b", "main")
	files := map[string]string{}
	appsDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appsDir, 0o755)
	const n = 6
	for i := range n {
		files[fmt.Sprintf("a%d/cm.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-a%d}\ndata: {i: \"%d\"}\n", i, i)
		_ = os.WriteFile(filepath.Join(appsDir, fmt.Sprintf("a%d.yaml", i)), []byte(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: a%d}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: a%d}
  destination: {server: https://kubernetes.default.svc, namespace: shard}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, i, g.dir, i)), 0o644)
	}
	g.commit("apps", files)
	type replica struct {
		cmd  *exec.Cmd
		logs *syncBuffer
	}
	var replicas []replica
	for i := range 3 {
		cmd := exec.Command("keyway", "daemon", "--shard", "--kubeconfig", env.Kubeconfig, "--app", appsDir, "--cache-dir", filepath.Join(work, fmt.Sprintf("cache%d", i)),
			"--interval", "2s", "--status-addr", "", "--leader-election-lease-duration", "6s", "--leader-election-renew-deadline", "4s", "--leader-election-retry-period", "500ms")
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		replicas = append(replicas, replica{cmd, logs})
	}
	exists := func(i int) bool {
		_, err := kube.CoreV1().ConfigMaps("shard").Get(ctx, fmt.Sprintf("cm-a%d", i), metav1.GetOptions{})
		return err == nil
	}
	waitFor(t, 60*time.Second, "every application synced", func() bool {
		for i := range n {
			if !exists(i) {
				return false
			}
		}
		return true
	})
	// Settle (every replica a member: past the 6 s warm-up), then watch a window of polls.
	time.Sleep(8 * time.Second)
	marks := make([]int, len(replicas))
	for r := range replicas {
		marks[r] = len(replicas[r].logs.String())
	}
	time.Sleep(5 * time.Second)
	owner := map[string][]int{}
	for r := range replicas {
		window := replicas[r].logs.String()[marks[r]:]
		for i := range n {
			if strings.Contains(window, fmt.Sprintf("msg=sync app=a%d ", i)) {
				owner[fmt.Sprintf("a%d", i)] = append(owner[fmt.Sprintf("a%d", i)], r)
			}
		}
	}
	perReplica := map[int]int{}
	for i := range n {
		o := owner[fmt.Sprintf("a%d", i)]
		if len(o) != 1 {
			t.Fatalf("application a%d was synced by replicas %v in one window, want exactly one", i, o)
		}
		perReplica[o[0]]++
	}
	t.Logf("applications per replica: %v", perReplica)
	// Kill a replica that owns something; its applications move.
	victim := -1
	for r, c := range perReplica {
		if c > 0 {
			victim = r
		}
	}
	var orphaned []int
	for i := range n {
		if owner[fmt.Sprintf("a%d", i)][0] == victim {
			orphaned = append(orphaned, i)
		}
	}
	_ = replicas[victim].cmd.Process.Kill()
	killed := time.Now()
	for _, i := range orphaned {
		if err := kube.CoreV1().ConfigMaps("shard").Delete(ctx, fmt.Sprintf("cm-a%d", i), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "the dead replica's applications taken over", func() bool {
		for _, i := range orphaned {
			if !exists(i) {
				return false
			}
		}
		return true
	})
	t.Logf("takeover: %d application(s) of the killed replica back %s after the kill (lease 6s, interval 2s)", len(orphaned), time.Since(killed).Round(100*time.Millisecond))
}
