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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/secrets"
)

// TestKeysAndController drives `keyway keys` and `keyway controller` as processes against a
// real API server: generate a key, seal with the served certificate, watch the Secret
// appear, and move the key backup to another namespace and to upstream kubeseal.
func TestKeysAndController(t *testing.T) {
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	ctx := t.Context()
	crd, _ := os.ReadFile("../../examples/sealedsecret/crd.yaml")
	if err := env.InstallCRDs(ctx, crd); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(env.Config)
	for _, ns := range []string{"keyway-system", "restore", "app"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	kc := []string{"--kubeconfig", env.Kubeconfig}
	keyway := func(args ...string) string {
		t.Helper()
		out, stderr, err := runTool(t, "keyway", nil, dir, args...)
		if err != nil {
			t.Fatalf("keyway %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	gen := keyway(append([]string{"keys", "generate", "-n", "keyway-system", "--key-bits", "2048"}, kc...)...)
	fp := strings.Fields(gen)[1]
	if list := keyway(append([]string{"keys", "list", "-n", "keyway-system"}, kc...)...); !strings.Contains(list, fp) {
		t.Fatalf("list lacks the new key %s:\n%s", fp, list)
	}
	backup := filepath.Join(dir, "backup.yaml")
	os.WriteFile(backup, []byte(keyway(append([]string{"keys", "export", "-n", "keyway-system"}, kc...)...)), 0o600)
	if out := keyway(append([]string{"keys", "import", "-n", "restore", "-f", backup}, kc...)...); !strings.Contains(out, "imported 1 key") {
		t.Fatalf("import: %s", out)
	}
	if list := keyway(append([]string{"keys", "list", "-n", "restore"}, kc...)...); !strings.Contains(list, fp) {
		t.Fatalf("the restored ring lacks %s:\n%s", fp, list)
	}

	// The controller, as a process.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(cctx, "keyway", append([]string{"controller", "-n", "keyway-system", "--listen", addr, "--key-bits", "2048"}, kc...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	cert := filepath.Join(dir, "cert.pem")
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("timed out waiting for %s; controller log:\n%s", what, logs.String())
		}
	}
	poll("the certificate endpoint", func() bool {
		resp, err := http.Get("http://" + addr + "/v1/cert.pem")
		if err != nil || resp.StatusCode != 200 {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return os.WriteFile(cert, b, 0o644) == nil
	})
	secretFile := filepath.Join(dir, "s.yaml")
	os.WriteFile(secretFile, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: app}\nstringData: {token: CANARY-ctl}\n"), 0o600)
	sealed := keyway("seal", "--cert", cert, "-f", secretFile)
	var obj unstructured.Unstructured
	if err := json.Unmarshal([]byte(sealed), &obj.Object); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	if _, err := dyn.Resource(secrets.SealedSecretGVR).Namespace("app").Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("the unsealed Secret", func() bool {
		s, err := kube.CoreV1().Secrets("app").Get(ctx, "api", metav1.GetOptions{})
		return err == nil && string(s.Data["token"]) == "CANARY-ctl"
	})
	if lease, err := kube.CoordinationV1().Leases("keyway-system").Get(ctx, "keyway-unsealer", metav1.GetOptions{}); err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("no leader-election Lease: %v", err)
	}
	if strings.Contains(logs.String(), "CANARY") {
		t.Fatalf("the controller logged a value:\n%s", logs.String())
	}

	// Upstream kubeseal opens what keyway sealed with keyway's exported key backup.
	kubeseal, err := testenv.Binary("kubeseal")
	if err != nil {
		t.Fatal(err)
	}
	sf := filepath.Join(dir, "sealed.json")
	os.WriteFile(sf, []byte(sealed), 0o600)
	out, stderr, err := runTool(t, kubeseal, []string{"KUBECONFIG=" + filepath.Join(dir, "none")}, dir, "--recovery-unseal", "--recovery-private-key", backup, "--secret-file", sf)
	if err != nil || !strings.Contains(out, fmt.Sprintf("%q", "Q0FOQVJZLWN0bA==")) {
		t.Fatalf("kubeseal with keyway's backup: %v %s\n%s", err, stderr, out)
	}
}
