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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// TestRestartUnderLoops: the API server restarts under all three loops — the unsealer and
// the syncer (one controller process) and the daemon — while more than a page of Secrets
// exists (so the informers' first lists came in pages). Once it is back, a new SealedSecret
// is unsealed, a new ExternalSecret synced and a new commit applied, within seconds (before
// the fix of the paged re-list the unsealer and the syncer were blind for ~10 minutes).
func TestRestartUnderLoops(t *testing.T) {
	env, kube := sealedSecretsCluster(t, "keyway-system", "app")
	ctx := t.Context()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	for i := range 520 {
		if _, err := kube.CoreV1().Secrets("app").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("filler-%03d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create := func(res, manifest string) {
		t.Helper()
		var u unstructured.Unstructured
		if err := json.Unmarshal([]byte(manifest), &u.Object); err != nil {
			t.Fatal(err)
		}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		if _, err := dyn.Resource(gv.WithResource(res)).Namespace("app").Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("secretstores", `{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": "app"},
		"spec": {"provider": {"fake": {"data": [{"key": "db", "value": "{\"password\": \"CANARY-restart\"}"}]}}}}`)
	externalSecret := func(name string) string {
		return `{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "` + name + `", "namespace": "app"},
			"spec": {"secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}}]}}`
	}
	synced := func(name string) func() bool {
		return func() bool {
			s, err := kube.CoreV1().Secrets("app").Get(ctx, name, metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == "CANARY-restart"
		}
	}

	work := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctl := exec.CommandContext(cctx, "keyway", "controller", "--kubeconfig", env.Kubeconfig, "-n", "keyway-system", "--listen", addr, "--key-bits", "2048", "--leader-elect=false")
	var ctlLogs syncBuffer
	ctl.Stdout, ctl.Stderr = &ctlLogs, &ctlLogs
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = ctl.Wait() }()

	g := newGitRepo(t, filepath.Join(work, "git", "app.git"))
	cm := func(v string) map[string]string {
		return map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {k: \"" + v + "\"}\n"}
	}
	g.commit("v1", cm("1"))
	appFile := filepath.Join(work, "app.yaml")
	_ = os.WriteFile(appFile, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: restart}
spec:
  project: default
  source: {repoURL: `+g.dir+`, targetRevision: main, path: app}
  destination: {server: https://kubernetes.default.svc, namespace: app}
  syncPolicy: {automated: {prune: true}}
`), 0o644)
	startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", appFile, "--cache-dir", filepath.Join(work, "cache"), "--interval", "2s")
	value := func(v string) func() bool {
		return func() bool {
			c, err := kube.CoreV1().ConfigMaps("app").Get(ctx, "settings", metav1.GetOptions{})
			return err == nil && c.Data["k"] == v
		}
	}

	cert := filepath.Join(work, "cert.pem")
	waitFor(t, 60*time.Second, "the sealing certificate", func() bool {
		resp, err := http.Get("http://" + addr + "/v1/cert.pem")
		if err != nil || resp.StatusCode != 200 {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return os.WriteFile(cert, b, 0o644) == nil
	})
	create("externalsecrets", externalSecret("before"))
	waitFor(t, 60*time.Second, "an ExternalSecret synced before the restart", synced("before"))
	waitFor(t, 60*time.Second, "the daemon's first sync", value("1"))

	// A write the loops do not watch, then the outage: the restarted API server's watch
	// caches begin after what the loops saw last.
	if _, err := kube.CoreV1().ConfigMaps("keyway-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()

	secretFile := filepath.Join(work, "s.yaml")
	_ = os.WriteFile(secretFile, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: sealed-after, namespace: app}\nstringData: {password: CANARY-restart}\n"), 0o600)
	out, stderr, err := runTool(t, "keyway", nil, work, "seal", "--cert", cert, "-f", secretFile)
	if err != nil {
		t.Fatalf("seal: %v\n%s", err, stderr)
	}
	create("sealedsecrets", out)
	create("externalsecrets", externalSecret("after"))
	g.commit("v2", cm("2"))
	defer func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", ctlLogs.String())
		}
	}()
	// The target is 10 s; client-go's reflectors retry a failed list or watch with a
	// back-off (0.8 s doubling to 30 s, with jitter) that can keep the first list after a 6 s
	// outage 7 to 14 s away (measured), so the bound here is 30 s and each figure is logged.
	for what, cond := range map[string]func() bool{
		"a SealedSecret created after the restart unsealed":  synced("sealed-after"),
		"an ExternalSecret created after the restart synced": synced("after"),
		"a commit after the restart applied by the daemon":   value("2"),
	} {
		waitFor(t, 30*time.Second, what, cond)
		t.Logf("%s %.1f s after the API server was back", what, time.Since(back).Seconds())
	}
}
