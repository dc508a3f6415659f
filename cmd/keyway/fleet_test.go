package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
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

// TestDaemonHoldsAFleet is issue 24's bar, on two real API servers and a real Vault: 50
// applications from one ApplicationSet (half on the hub, half on a spoke), 5 more that
// never become healthy and 5 whose render fails, with a panic injected into one more
// application's every sync. While the stuck ones wait and the broken ones fail, a commit
// for a healthy application is applied within the next interval or two, a Vault write
// reaches an automated (non-selfHeal) application's Secret and its Deployment's pod
// template, a key removed from a rendered Secret leaves the live one, and the process and
// every other application keep running. The times are logged to compare run to run.
func TestDaemonHoldsAFleet(t *testing.T) {
	ctx := t.Context()
	hubEnv, v := clusterWithVault(t)
	hub := kubernetes.NewForConfigOrDie(hubEnv.Config)
	if _, err := hub.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spokeEnv, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spokeEnv.Stop() })
	spoke := kubernetes.NewForConfigOrDie(spokeEnv.Config)
	addSpoke(t, hub, spokeEnv, "spoke")
	// Deployments on the hub become available; the spoke has no kubelet, so the stuck
	// applications (all on the spoke) never do.
	kctx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	go (&fakeKubelet{}).run(kctx, hub)

	const canary = "canary-fleet-4b7e"
	setPassword := func(p string) {
		if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/fleet/db", map[string]any{"data": map[string]any{"password": p}}); err != nil {
			t.Fatal(err)
		}
	}
	setPassword(canary + "-v1")

	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "fleet.git"))
	configMap := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: \"" + v + "\"}\n"
	}
	deployment := func(name, env string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + "}\nspec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n" +
			"    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers:\n      - name: c\n        image: app:1\n" + env
	}
	secret := func(extra string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/fleet/db#password>" + extra + "}\n"
	}
	files := map[string]string{
		"stuck/deploy.yaml": deployment("web", ""),
		"broken/s.yaml":     "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: <path:secret/data/fleet/missing#k>}\n",
		"rotating/db.yaml":  secret(", retired: old-key"),
		"rotating/web.yaml": deployment("web", "        env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n"),
		"rotating/cm.yaml":  configMap("1"),
		"panicking/cm.yaml": configMap("1"),
		"healthy-0/cm.yaml": configMap("1"),
		"healthy-1/cm.yaml": configMap("1"),
		"app-01/cm.yaml":    configMap("1"),
	}
	g.commit("fleet", files)

	// The ApplicationSet: 50 healthy applications, even ones on the hub and odd ones on the
	// spoke. app-00 is the rotating one (on the hub, where Deployments become available);
	// app-01 gets the commit (on the spoke).
	var elements []string
	for i := range 50 {
		cluster, path := "in-cluster", "healthy-0"
		if i%2 == 1 {
			cluster, path = "spoke", "healthy-1"
		}
		switch i {
		case 0:
			path = "rotating"
		case 1:
			path = "app-01"
		}
		elements = append(elements, fmt.Sprintf("{app: app-%02d, cluster: %s, path: %s}", i, cluster, path))
	}
	appDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appDir, 0o755)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(appDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("set.yaml", `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fleet}
spec:
  generators: [{list: {elements: [`+strings.Join(elements, ", ")+`]}}]
  template:
    metadata: {name: '{{app}}'}
    spec:
      project: default
      source: {repoURL: `+g.dir+`, targetRevision: main, path: '{{path}}'}
      destination: {name: '{{cluster}}', namespace: '{{app}}'}
      syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`)
	app := func(name, path, cluster string) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: %s}
  destination: {name: %s, namespace: %s}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, name, g.dir, path, cluster, name)
	}
	for i := range 5 {
		write(fmt.Sprintf("stuck-%d.yaml", i), app(fmt.Sprintf("stuck-%d", i), "stuck", "spoke"))
		write(fmt.Sprintf("broken-%d.yaml", i), app(fmt.Sprintf("broken-%d", i), "broken", "in-cluster"))
	}
	write("panicking.yaml", app("panicking", "panicking", "in-cluster"))

	tokenFile := filepath.Join(work, "token")
	_ = os.WriteFile(tokenFile, []byte(v.RootToken), 0o600)
	t.Setenv("KEYWAY_TEST_PANIC_APP", "panicking")
	const interval = 3 * time.Second
	addr, logs := startDaemon(t, "--kubeconfig", hubEnv.Kubeconfig, "--app", appDir, "--cache-dir", filepath.Join(work, "cache"),
		"--backend", "vault", "--vault-address", v.Addr, "--vault-token-file", tokenFile,
		"--interval", interval.String(), "--wave-timeout", "10m", "--kube-qps", "100", "--kube-burst", "200")

	clientOf := func(i int) kubernetes.Interface {
		if i%2 == 1 {
			return spoke
		}
		return hub
	}
	version := func(kube kubernetes.Interface, ns string) string {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["version"]
	}
	waitFor(t, 4*time.Minute, "the 50 healthy applications synced", func() bool {
		for i := range 50 {
			if version(clientOf(i), fmt.Sprintf("app-%02d", i)) != "1" {
				return false
			}
		}
		return true
	})
	for i := range 5 {
		stuck, broken := fmt.Sprintf("stuck-%d", i), fmt.Sprintf("broken-%d", i)
		waitFor(t, time.Minute, stuck+" waiting for health, "+broken+" failing", func() bool {
			s, b := appStatus(t, addr, stuck), appStatus(t, addr, broken)
			return s["operation"] != nil && s["health"] == "Progressing" &&
				b["health"] != "Healthy" && strings.Contains(fmt.Sprint(b["message"]), "render failed")
		})
	}

	// A commit for app-01 (on the spoke) while 5 wait and 5 fail.
	files["app-01/cm.yaml"] = configMap("2")
	g.commit("app-01 v2", files)
	committed := time.Now()
	waitFor(t, time.Minute, "the commit applied to app-01", func() bool { return version(spoke, "app-01") == "2" })
	t.Logf("commit → applied in %s (interval %s) beside 5 stuck, 5 broken and 1 panicking application", time.Since(committed).Round(10*time.Millisecond), interval)

	// A Vault write reaches app-00's Secret and its Deployment's pod template.
	checksum := func() string {
		d, err := hub.AppsV1().Deployments("app-00").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Annotations["keyway.dev/secret-checksum"]
	}
	var first string
	waitFor(t, time.Minute, "app-00's pod template checksum", func() bool { first = checksum(); return first != "" })
	rotated := time.Now()
	setPassword(canary + "-v2")
	waitFor(t, time.Minute, "the rotation in app-00's Secret and pod template", func() bool {
		s, err := hub.CoreV1().Secrets("app-00").Get(ctx, "db", metav1.GetOptions{})
		c := checksum()
		return err == nil && string(s.Data["password"]) == canary+"-v2" && c != "" && c != first
	})
	t.Logf("rotation: Vault write → Secret and pod template in %s (interval %s)", time.Since(rotated).Round(10*time.Millisecond), interval)

	// A key removed from the rendered Secret leaves the live one.
	files["rotating/db.yaml"] = secret("")
	g.commit("retire a key", files)
	waitFor(t, time.Minute, "the retired key gone from app-00's Secret", func() bool {
		s, err := hub.CoreV1().Secrets("app-00").Get(ctx, "db", metav1.GetOptions{})
		_, kept := s.Data["retired"]
		return err == nil && !kept && string(s.Data["password"]) == canary+"-v2"
	})

	// The panicking application: recovered and counted, never synced; the process and the
	// others carry on (every healthy application is Synced and Healthy).
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("the daemon stopped serving: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	panics := -1.0
	for _, l := range strings.Split(string(body), "\n") {
		if s, ok := strings.CutPrefix(l, "keyway_daemon_panics_total "); ok {
			panics, _ = strconv.ParseFloat(s, 64)
		}
	}
	if panics < 1 || !strings.Contains(logs.String(), "reconcile panicked") {
		t.Fatalf("panics_total %v; the log:\n%s", panics, tail(logs.String(), 3000))
	}
	if _, err := hub.CoreV1().ConfigMaps("panicking").Get(ctx, "settings", metav1.GetOptions{}); err == nil {
		t.Fatal("the panicking application was synced")
	}
	for i := range 50 {
		name := fmt.Sprintf("app-%02d", i)
		waitFor(t, 30*time.Second, name+" Synced and Healthy", func() bool {
			st := appStatus(t, addr, name)
			return st["sync"] == "Synced" && st["health"] == "Healthy"
		})
	}
	if strings.Contains(logs.String(), canary) || strings.Contains(logs.String(), "DATA RACE") {
		t.Fatalf("a secret value in the logs, or a race:\n%s", tail(logs.String(), 3000))
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }
