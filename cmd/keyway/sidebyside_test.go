package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestDaemonSideBySide: applications sync side by side, and waiting holds no worker. Two
// applications whose Deployment never becomes available (no kubelet here) wait for their
// wave's health — for up to --wave-timeout, 5 minutes — and one fails to render; with only
// two workers, a new commit for the healthy ones is still applied within the next
// interval, their status says Synced, and the stuck ones say Progressing with the wave
// they wait for (an operation Running).
func TestDaemonSideBySide(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "fleet.git"))
	calm := []string{"calm-1", "calm-2", "calm-3", "calm-4", "calm-5", "calm-6"}
	files := map[string]string{
		"broken/s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: <path:secret/data/missing#k>}\n",
	}
	configMaps := func(v string) {
		for _, name := range calm {
			files[name+"/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: \"" + v + "\"}\n"
		}
	}
	configMaps("1")
	for _, name := range []string{"stuck-1", "stuck-2"} {
		files[name+"/deploy.yaml"] = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n" +
			"    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: crashloop:1}]\n"
	}
	g.commit("fleet", files)
	appDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appDir, 0o755)
	for _, name := range append([]string{"broken", "stuck-1", "stuck-2"}, calm...) {
		app := fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: %s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, name, g.dir, name, name)
		if err := os.WriteFile(filepath.Join(appDir, name+".yaml"), []byte(app), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secretsFile := filepath.Join(work, "secrets.yaml")
	_ = os.WriteFile(secretsFile, []byte("secret/data/other:\n  k: v\n"), 0o600)
	const interval = 3 * time.Second
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appDir, "--cache-dir", filepath.Join(work, "cache"),
		"--secrets-file", secretsFile, "--interval", interval.String(), "--wave-timeout", "5m", "--app-workers", "2")

	version := func(app string) string {
		cm, err := kube.CoreV1().ConfigMaps(app).Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["version"]
	}
	allAt := func(v string) bool {
		for _, name := range calm {
			if version(name) != v {
				return false
			}
		}
		return true
	}
	waitFor(t, 60*time.Second, "the healthy applications' first sync", func() bool { return allAt("1") })
	waitFor(t, 30*time.Second, "the stuck applications applied and waiting", func() bool {
		_, err1 := kube.AppsV1().Deployments("stuck-1").Get(ctx, "web", metav1.GetOptions{})
		_, err2 := kube.AppsV1().Deployments("stuck-2").Get(ctx, "web", metav1.GetOptions{})
		return err1 == nil && err2 == nil
	})
	for _, name := range []string{"stuck-1", "stuck-2"} {
		waitFor(t, 10*time.Second, name+" waiting for its wave", func() bool {
			st := appStatus(t, addr, name)
			op, _ := st["operation"].(map[string]any)
			return st["health"] == "Progressing" && op != nil && op["phase"] == "Running" &&
				strings.Contains(fmt.Sprint(st["message"]), "waiting for wave 0 to be healthy: Deployment web")
		})
	}
	configMaps("2")
	g.commit("calm v2", files)
	committed := time.Now()
	waitFor(t, 60*time.Second, "the new commit on every healthy application", func() bool { return allAt("2") })
	took := time.Since(committed)
	t.Logf("commit → applied on %d healthy applications in %s (interval %s) while 2 wait for health and 1 fails to render",
		len(calm), took.Round(10*time.Millisecond), interval)
	for _, name := range calm {
		waitFor(t, 30*time.Second, name+" Synced and Healthy", func() bool {
			st := appStatus(t, addr, name)
			return st["sync"] == "Synced" && st["health"] == "Healthy"
		})
	}
	if st := appStatus(t, addr, "broken"); st["health"] == "Healthy" || !strings.Contains(fmt.Sprint(st["message"]), "render failed") {
		t.Fatalf("the broken application's status: %v", st)
	}
	if strings.Contains(logs.String(), "panic") || strings.Contains(logs.String(), "DATA RACE") {
		t.Fatalf("a worker panicked or raced (go test -race):\n%s", logs.String())
	}
}

// TestDaemonAppFiles: failure stays local, and the --app files are read again each
// interval. A refused file in the --app directory does not keep the daemon from starting:
// the others sync and /apps names the file. An Application file added while the daemon runs
// is synced; one removed is removed as Argo CD removes a deleted Application (its inventory
// goes, its objects stay without resources-finalizer).
func TestDaemonAppFiles(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "apps.git"))
	g.commit("apps", map[string]string{
		"good/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: good}\n",
		"late/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: late}\n",
	})
	appDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appDir, 0o755)
	app := func(name string) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: %s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, name, g.dir, name, name)
	}
	write := func(file, content string) {
		if err := os.WriteFile(filepath.Join(appDir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good.yaml", app("good"))
	write("bad.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: bad}\nspec: {project: default}\n")
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appDir, "--cache-dir", filepath.Join(work, "cache"), "--interval", "2s")
	value := func(ns string) string {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["k"]
	}
	waitFor(t, 60*time.Second, "the good application synced beside a refused file", func() bool { return value("good") == "good" })
	bad := appStatus(t, addr, "--app "+filepath.Join(appDir, "bad.yaml"))
	if bad["health"] != "Degraded" || !strings.Contains(fmt.Sprint(bad["message"]), "spec.source.repoURL is required") {
		t.Fatalf("the refused file's status: %v\n%s", bad, logs.String())
	}

	write("late.yaml", app("late"))
	waitFor(t, 30*time.Second, "an application file added while running", func() bool { return value("late") == "late" })

	for _, f := range []string{"good.yaml", "bad.yaml"} {
		if err := os.Remove(filepath.Join(appDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the removed application's inventory gone", func() bool {
		_, err := kube.CoreV1().ConfigMaps("keyway-system").Get(ctx, "keyway-app-good", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	waitFor(t, 10*time.Second, "the removed application and the refused file gone from /apps", func() bool {
		resp, err := http.Get("http://" + addr + "/apps")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var apps []map[string]any
		if json.NewDecoder(resp.Body).Decode(&apps) != nil {
			return false
		}
		for _, a := range apps {
			if a["name"] == "good" || strings.HasPrefix(fmt.Sprint(a["name"]), "--app ") {
				return false
			}
		}
		return len(apps) == 1
	})
	if value("good") != "good" {
		t.Fatal("the objects of an application removed without resources-finalizer were deleted")
	}
}

// TestDaemonHealsWithoutGit: with its git repository gone, a selfHeal application's drift
// is still reverted — to the last render — and its status says git is unreachable and new
// commits wait (Sync Unknown), instead of Synced.
func TestDaemonHealsWithoutGit(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	repo := filepath.Join(work, "git", "app.git")
	g := gitWork{t, repo}
	_ = os.MkdirAll(g.dir, 0o755)
	g.git("init", "-q", "-b", "main")
	g.commit("app", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: from-git}\n"})
	appFile := filepath.Join(work, "app.yaml")
	_ = os.WriteFile(appFile, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: healer}
spec:
  project: default
  source: {repoURL: `+repo+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: healer}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appFile, "--cache-dir", filepath.Join(work, "cache"), "--interval", "2s")
	value := func() string {
		cm, err := kube.CoreV1().ConfigMaps("healer").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["k"]
	}
	waitFor(t, 60*time.Second, "the first sync", func() bool { return value() == "from-git" })
	if err := os.Rename(repo, repo+".gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a poll that finds git gone", func() bool {
		return strings.Contains(fmt.Sprint(appStatus(t, addr, "healer")["message"]), "git unreachable")
	})
	cm, _ := kube.CoreV1().ConfigMaps("healer").Get(ctx, "settings", metav1.GetOptions{})
	cm.Data["k"] = "hand-edited"
	if _, err := kube.CoreV1().ConfigMaps("healer").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the drift reverted without git", func() bool { return value() == "from-git" })
	st := appStatus(t, addr, "healer")
	if st["sync"] != "Unknown" || !strings.Contains(fmt.Sprint(st["message"]), "new commits wait") {
		t.Fatalf("status while git is gone: %v\n%s", st, logs.String())
	}
	if err := os.Rename(repo+".gone", repo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "Synced once git is back", func() bool { return appStatus(t, addr, "healer")["sync"] == "Synced" })
}

// TestDaemonSilentGit: an application whose git server accepts connections and never
// answers fails its sync within --git-timeout, saying so, while another application keeps
// syncing (a new commit reaches it within an interval or two).
func TestDaemonSilentGit(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	}()
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "calm.git"))
	cm := func(v string) map[string]string {
		return map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: \"" + v + "\"}\n"}
	}
	g.commit("v1", cm("1"))
	appDir := filepath.Join(work, "apps")
	_ = os.MkdirAll(appDir, 0o755)
	for name, repo := range map[string]string{"calm": g.dir, "silent": "git://" + silent.Addr().String() + "/repo.git"} {
		_ = os.WriteFile(filepath.Join(appDir, name+".yaml"), []byte(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %q, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, name, repo, name)), 0o644)
	}
	addr, logs := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appDir, "--cache-dir", filepath.Join(work, "cache"), "--interval", "2s", "--git-timeout", "2s")
	value := func() string {
		c, err := kube.CoreV1().ConfigMaps("calm").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return c.Data["k"]
	}
	waitFor(t, 60*time.Second, "the calm application synced", func() bool { return value() == "1" })
	waitFor(t, 30*time.Second, "the silent application failed on its deadline", func() bool {
		st := appStatus(t, addr, "silent")
		return st["health"] != "Healthy" && strings.Contains(fmt.Sprint(st["message"]), "did not finish within 2s")
	})
	g.commit("v2", cm("2"))
	committed := time.Now()
	waitFor(t, 30*time.Second, "a new commit on the calm application", func() bool { return value() == "2" })
	t.Logf("commit → applied in %s beside an application whose git server never answers (--git-timeout 2s, interval 2s)", time.Since(committed).Round(10*time.Millisecond))
	if strings.Contains(logs.String(), "DATA RACE") {
		t.Fatal(logs.String())
	}
}

// TestDaemonWaveResumes: an operation waiting for its wave's health goes on when the wave
// becomes healthy — the next wave is applied only then — without holding a worker between.
func TestDaemonWaveResumes(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "waves.git"))
	g.commit("waves", map[string]string{
		"app/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db, annotations: {argocd.argoproj.io/sync-wave: \"0\"}}\nspec:\n  selector: {matchLabels: {app: db}}\n  template:\n" +
			"    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: c, image: db:1}]\n",
		"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-db, annotations: {argocd.argoproj.io/sync-wave: \"1\"}}\ndata: {k: v}\n",
	})
	appFile := filepath.Join(work, "app.yaml")
	_ = os.WriteFile(appFile, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: waves}
spec:
  project: default
  source: {repoURL: `+g.dir+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: waves}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)
	addr, _ := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appFile, "--cache-dir", filepath.Join(work, "cache"), "--interval", "1h")
	waitFor(t, 60*time.Second, "wave 0 applied and waiting", func() bool {
		op, _ := appStatus(t, addr, "waves")["operation"].(map[string]any)
		return op != nil && op["wave"] == float64(0)
	})
	time.Sleep(2 * time.Second) // a few looks at the waiting wave
	if _, err := kube.CoreV1().ConfigMaps("waves").Get(ctx, "after-db", metav1.GetOptions{}); err == nil {
		t.Fatal("wave 1 was applied before wave 0 was healthy")
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	go (&fakeKubelet{}).run(kctx, kube) // the Deployment becomes available
	waitFor(t, 30*time.Second, "wave 1 applied once wave 0 is healthy", func() bool {
		_, err := kube.CoreV1().ConfigMaps("waves").Get(ctx, "after-db", metav1.GetOptions{})
		return err == nil
	})
	waitFor(t, 30*time.Second, "Synced and Healthy, the operation done", func() bool {
		st := appStatus(t, addr, "waves")
		return st["sync"] == "Synced" && st["health"] == "Healthy" && st["operation"] == nil
	})
}

// daemonCluster starts an API server of its own, with the daemon's state namespace.
func daemonCluster(t *testing.T) (*testenv.Env, kubernetes.Interface) {
	t.Helper()
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env, kube
}

// newGitRepo makes an empty git repository (branch main) at dir.
func newGitRepo(t *testing.T, dir string) gitWork {
	t.Helper()
	g := gitWork{t, dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.git("init", "-q", "-b", "main")
	return g
}
