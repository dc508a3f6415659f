package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestSyncerStartsLate: a syncer-only controller started while the API server is down
// serves /healthz at once, and starts syncing once the API server is back and the
// external-secrets.io CRDs are installed — it does not stay off for good.
func TestSyncerStartsLate(t *testing.T) {
	ctx := t.Context()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(dctx, "keyway", "controller", "--kubeconfig", env.Kubeconfig, "--unsealer=false", "--leader-elect=false", "--listen", addr)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	waitFor(t, 20*time.Second, "/healthz while the API server is down", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crd, _ := os.ReadFile("../../examples/install/crds.yaml")
	if err := env.InstallCRDs(ctx, crd); err != nil {
		t.Fatal(err)
	}
	for res, manifest := range map[string]string{
		"secretstores": `{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": "app"},
			"spec": {"provider": {"fake": {"data": [{"key": "db", "value": "{\"password\": \"CANARY-late\"}"}]}}}}`,
		"externalsecrets": `{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "db", "namespace": "app"},
			"spec": {"secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}}]}}`,
	} {
		var u unstructured.Unstructured
		if err := json.Unmarshal([]byte(manifest), &u.Object); err != nil {
			t.Fatal(err)
		}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		if _, err := dynamic.NewForConfigOrDie(env.Config).Resource(gv.WithResource(res)).Namespace("app").Create(ctx, &u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// CRDs are looked for every 30 s once the API server answers.
	waitFor(t, 60*time.Second, "the ExternalSecret synced by the late-started syncer", func() bool {
		s, err := kube.CoreV1().Secrets("app").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == "CANARY-late"
	})
}
