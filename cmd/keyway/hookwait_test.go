package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestDaemonHookWaits: hooks that have not completed hold no worker either. With one
// worker, an application's PreSync, Sync and PostSync hooks each wait (no kubelet runs
// them until the test completes them) while a new commit for another application is
// applied; each hook is created once — a run that comes back looks at it, never starts it
// over — the resources after a hook wave come only once it completed, and a completed hook
// is deleted (HookSucceeded).
func TestDaemonHookWaits(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "hooks.git"))
	job := func(name, phase, wave string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name + "\n  annotations: {argocd.argoproj.io/hook: " + phase +
			", argocd.argoproj.io/hook-delete-policy: HookSucceeded, argocd.argoproj.io/sync-wave: \"" + wave + "\"}\n" +
			"spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: job:1}]\n"
	}
	configMap := func(name, wave, v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", annotations: {argocd.argoproj.io/sync-wave: \"" + wave + "\"}}\ndata: {v: \"" + v + "\"}\n"
	}
	files := map[string]string{
		"hooked/migrate.yaml": job("migrate", "PreSync", "0"),
		"hooked/first.yaml":   configMap("first", "0", "1"),
		"hooked/seed.yaml":    job("seed", "Sync", "1"),
		"hooked/after.yaml":   configMap("after", "2", "1"),
		"hooked/notify.yaml":  job("notify", "PostSync", "0"),
		"calm/cm.yaml":        configMap("settings", "0", "1"),
	}
	g.commit("hooks", files)
	appDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appDir, 0o755)
	for _, name := range []string{"hooked", "calm"} {
		_ = os.WriteFile(filepath.Join(appDir, name+".yaml"), []byte(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: %s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, name, g.dir, name, name)), 0o644)
	}
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appDir, "--cache-dir", filepath.Join(work, "cache"),
		"--interval", "2s", "--wave-timeout", "5m", "--app-workers", "1")

	value := func(ns, name string) string {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["v"]
	}
	uid := func(name string) types.UID {
		j, err := kube.BatchV1().Jobs("hooked").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return j.UID
	}
	complete := func(name string) {
		t.Helper()
		j, err := kube.BatchV1().Jobs("hooked").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		j.Status = batchv1.JobStatus{StartTime: &now, CompletionTime: &now, Succeeded: 1, Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
		if _, err := kube.BatchV1().Jobs("hooked").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitingFor := func(what string) {
		t.Helper()
		waitFor(t, 30*time.Second, "hooked waiting for "+what, func() bool {
			st := appStatus(t, addr, "hooked")
			return st["operation"] != nil && strings.Contains(fmt.Sprint(st["message"]), "waiting for "+what+" to be healthy")
		})
	}

	waitFor(t, 60*time.Second, "calm synced", func() bool { return value("calm", "settings") == "1" })
	waitingFor("PreSync hooks (wave 0)")
	migrate := uid("migrate")
	time.Sleep(3 * time.Second) // the waiting operation is looked at several times
	if uid("migrate") != migrate || migrate == "" {
		t.Fatal("the PreSync hook was started over by a run that came back to it")
	}
	if value("hooked", "first") != "" {
		t.Fatal("wave 0 was applied before the PreSync hooks completed")
	}
	files["calm/cm.yaml"] = configMap("settings", "0", "2")
	g.commit("calm v2", files)
	waitFor(t, 30*time.Second, "a commit for calm applied by the one worker while hooked waits", func() bool { return value("calm", "settings") == "2" })

	complete("migrate")
	waitingFor("wave 1") // the Sync hook seed
	if value("hooked", "first") != "1" || value("hooked", "after") != "" {
		t.Fatalf("after the PreSync hook: first=%q after=%q", value("hooked", "first"), value("hooked", "after"))
	}
	waitFor(t, 10*time.Second, "the completed PreSync hook deleted", func() bool { return uid("migrate") == "" })
	seed := uid("seed")
	time.Sleep(2 * time.Second)
	if uid("seed") != seed || seed == "" {
		t.Fatal("the Sync hook was started over")
	}
	complete("seed")
	waitingFor("PostSync hooks (wave 0)")
	if value("hooked", "after") != "1" {
		t.Fatal("wave 2 not applied after the Sync hook completed")
	}
	complete("notify")
	waitFor(t, 30*time.Second, "hooked Synced and Healthy", func() bool {
		st := appStatus(t, addr, "hooked")
		return st["sync"] == "Synced" && st["health"] == "Healthy" && st["operation"] == nil
	})
	time.Sleep(3 * time.Second) // polls with nothing to do run no hook again
	for _, name := range []string{"migrate", "seed", "notify"} {
		if _, err := kube.BatchV1().Jobs("hooked").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("hook %s: %v, want deleted and not run again", name, err)
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatal(logs.String())
	}
}
