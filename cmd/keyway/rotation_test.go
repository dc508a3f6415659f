package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
)

// TestDaemonRotation: a value rotated in a real Vault reaches the rendered Secret and rolls
// the Deployment that consumes it (a new keyway.dev/secret-checksum on its pod template)
// within one poll interval, with nobody refreshing or restarting anything — for an
// automated application without selfHeal (the guide's policy): a rotation changes what is
// wanted, as a commit does. Polls ask Vault for the current version (KV v2 metadata), not
// the value. A key removed from the Secret in git leaves the live Secret.
func TestDaemonRotation(t *testing.T) {
	ctx := t.Context()
	env, v := clusterWithVault(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kctx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	go (&fakeKubelet{}).run(kctx, kube)
	const canary = "canary-rotation-5d1c"
	setPassword := func(p string) {
		if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/rotate", map[string]any{"data": map[string]any{"password": p}}); err != nil {
			t.Fatal(err)
		}
	}
	setPassword(canary + "-v1")

	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "app.git"))
	deploy := func(name, env string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + "}\nspec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n" +
			"    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers:\n      - name: c\n        image: app\n" + env
	}
	g.commit("app", map[string]string{
		"app/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/rotate#password>, retired: old-key}\n",
		"app/web.yaml":    deploy("web", "        env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n"),
		"app/other.yaml":  deploy("other", ""),
	})
	appFile := filepath.Join(work, "app.yaml")
	_ = os.WriteFile(appFile, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: rotating}
spec:
  project: default
  source: {repoURL: `+g.dir+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: shop}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)
	tokenFile := filepath.Join(work, "token")
	_ = os.WriteFile(tokenFile, []byte(v.RootToken), 0o600)
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appFile, "--cache-dir", filepath.Join(work, "cache"),
		"--backend", "vault", "--vault-address", v.Addr, "--vault-token-file", tokenFile, "--interval", "2s", "--wave-timeout", "20s")

	checksum := func(name string) string {
		d, err := kube.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Annotations["keyway.dev/secret-checksum"]
	}
	var first string
	waitFor(t, 60*time.Second, "the first sync", func() bool { first = checksum("web"); return first != "" })
	if checksum("other") != "" {
		t.Fatal("a Deployment that consumes no Secret got a checksum")
	}
	if strings.Contains(first, canary) {
		t.Fatal("the checksum holds the value")
	}
	// Polls with nothing changed reuse the render: the secret is read again, nothing built.
	series := func(name string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return 0
	}
	metric := func(result string) float64 { return series(`keyway_daemon_renders_total{result="` + result + `"}`) }
	waitFor(t, 30*time.Second, "polls reusing the render", func() bool { return metric("reused") >= 2 })
	// Those polls asked Vault for the secret's current version (KV v2 metadata), not its value.
	if byVersion, byValue := series(`keyway_daemon_secret_checks_total{by="version"}`), series(`keyway_daemon_secret_checks_total{by="value"}`); byVersion < 2 || byValue != 0 {
		t.Fatalf("secret checks: %v by version, %v by value; want the versions only", byVersion, byValue)
	}
	renderedBefore := metric("rendered")
	rotated := time.Now()
	setPassword(canary + "-v2")
	waitFor(t, 30*time.Second, "the rotated checksum", func() bool { c := checksum("web"); return c != "" && c != first })
	took := time.Since(rotated)
	s, _ := kube.CoreV1().Secrets("shop").Get(ctx, "db", metav1.GetOptions{})
	if string(s.Data["password"]) != canary+"-v2" {
		t.Fatalf("the Secret was not rotated: %q", s.Data["password"])
	}
	// A figure to compare run to run (the target, one interval plus 5 s, is not asserted
	// here: a loaded machine is not a measurement).
	t.Logf("rotation: Vault write → new pod-template checksum in %s (interval 2s)", took.Round(10*time.Millisecond))
	if metric("rendered") <= renderedBefore {
		t.Fatal("the rotated secret did not make the application render again")
	}
	// The sync that applied it says why (once it has finished waiting for health).
	waitFor(t, 30*time.Second, "status reason secrets", func() bool { return appStatus(t, addr, "rotating")["reason"] == "secrets" })
	// A key that leaves git leaves the cluster.
	g.commit("retire a key", map[string]string{"app/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/rotate#password>}\n"})
	waitFor(t, 30*time.Second, "the retired key gone from the live Secret", func() bool {
		s, err := kube.CoreV1().Secrets("shop").Get(ctx, "db", metav1.GetOptions{})
		_, kept := s.Data["retired"]
		return err == nil && !kept && string(s.Data["password"]) == canary+"-v2"
	})
	// Opting out leaves the pod template alone.
	g.commit("opt out", map[string]string{"app/web.yaml": strings.Replace(deploy("web", "        env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n"),
		"metadata: {name: web}", "metadata: {name: web, annotations: {keyway.dev/roll-on-secret-change: \"false\"}}", 1)})
	waitFor(t, 30*time.Second, "the opt-out", func() bool { return checksum("web") == "" })
	if strings.Contains(logs.String(), canary) {
		t.Fatal("a secret value reached the logs")
	}
}

// appStatus is one application's entry of the daemon's /apps at addr, or an empty map (no
// field matches what a test waits for) while the daemon is not serving or not synced it.
func appStatus(t *testing.T, addr, name string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/apps")
	if err != nil {
		return map[string]any{}
	}
	defer resp.Body.Close()
	var apps []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&apps); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a["name"] == name {
			return a
		}
	}
	return map[string]any{}
}

// startDaemon runs `keyway daemon` with args (without leader election, serving its status
// on a free port) until the test ends, and returns that address and its log.
func startDaemon(t *testing.T, args ...string) (addr string, logs *syncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, "keyway", append([]string{"daemon", "--leader-elect=false", "--status-addr", addr}, args...)...)
	logs = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return addr, logs
}

// TestDaemonHealsWithoutVault: with Vault down, a selfHeal application's drift is still
// reverted — to the last render, whose secrets could not be read again — and its status
// says so (Sync Unknown) instead of Synced; nothing is emptied.
func TestDaemonHealsWithoutVault(t *testing.T) {
	ctx := t.Context()
	env, v := clusterWithVault(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const canary = "canary-vault-down-7a2e"
	if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/heal", map[string]any{"data": map[string]any{"password": canary}}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "app.git"))
	g.commit("app", map[string]string{
		"app/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/heal#password>}\n",
		"app/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: from-git}\n",
	})
	appFile := filepath.Join(work, "app.yaml")
	_ = os.WriteFile(appFile, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: healer}
spec:
  project: default
  source: {repoURL: `+g.dir+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: healer}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)
	tokenFile := filepath.Join(work, "token")
	_ = os.WriteFile(tokenFile, []byte(v.RootToken), 0o600)
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appFile, "--cache-dir", filepath.Join(work, "cache"),
		"--backend", "vault", "--vault-address", v.Addr, "--vault-token-file", tokenFile, "--interval", "2s")
	value := func() string {
		cm, err := kube.CoreV1().ConfigMaps("healer").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["k"]
	}
	waitFor(t, 60*time.Second, "the first sync", func() bool { return value() == "from-git" })
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a poll that cannot read Vault", func() bool {
		return strings.Contains(fmt.Sprint(appStatus(t, addr, "healer")["message"]), "secrets could not be read again")
	})
	cm, _ := kube.CoreV1().ConfigMaps("healer").Get(ctx, "settings", metav1.GetOptions{})
	cm.Data["k"] = "hand-edited"
	if _, err := kube.CoreV1().ConfigMaps("healer").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the drift reverted without Vault", func() bool { return value() == "from-git" })
	if st := appStatus(t, addr, "healer"); st["sync"] != "Unknown" {
		t.Fatalf("status while Vault is down: %v", st)
	}
	if s, err := kube.CoreV1().Secrets("healer").Get(ctx, "db", metav1.GetOptions{}); err != nil || string(s.Data["password"]) != canary {
		t.Fatalf("the Secret lost its value while Vault is down: %v", err)
	}
	if strings.Contains(logs.String(), canary) {
		t.Fatal("a secret value reached the logs")
	}
}
