package main

import (
	"context"
	"crypto/rand"
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
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sealing"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

// TestKeysAndController drives `keyway keys` and `keyway controller` as processes against a
// real API server: generate a key, seal with the served certificate, watch the Secret
// appear, and move the key backup to another namespace and to upstream kubeseal.
func TestKeysAndController(t *testing.T) {
	env, kube := sealedSecretsCluster(t, "keyway-system", "restore", "app")
	ctx := t.Context()
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

	// The controller, as a process, on an address the API server may proxy to (it refuses
	// loopback), so kubeseal-style --fetch-cert and online --validate work through it.
	hostIP := nonLoopbackIP(t)
	l, _ := net.Listen("tcp", hostIP+":0")
	addr := l.Addr().String()
	l.Close()
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(cctx, "keyway", append([]string{"controller", "-n", "keyway-system", "--listen", addr, "--key-bits", "2048"}, kc...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var logs syncBuffer
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
	if _, err := dyn.Resource(sealedsecrets.SealedSecretGVR).Namespace("app").Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("the unsealed Secret", func() bool {
		s, err := kube.CoreV1().Secrets("app").Get(ctx, "api", metav1.GetOptions{})
		return err == nil && string(s.Data["token"]) == "CANARY-ctl"
	})
	// The same process syncs ExternalSecrets (the CRDs are installed), and /metrics says so.
	for res, manifest := range map[string]string{
		"secretstores": `{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": "app"},
			"spec": {"provider": {"fake": {"data": [{"key": "db", "value": "{\"password\": \"CANARY-es\"}"}]}}}}`,
		"externalsecrets": `{"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret", "metadata": {"name": "db", "namespace": "app"},
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
	poll("the synced ExternalSecret", func() bool {
		s, err := kube.CoreV1().Secrets("app").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == "CANARY-es"
	})
	poll("the syncer's metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `keyway_syncer_syncs_total{result="synced"}`)
	})
	if lease, err := kube.CoordinationV1().Leases("keyway-system").Get(ctx, "keyway-unsealer", metav1.GetOptions{}); err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("no leader-election Lease: %v", err)
	}
	if strings.Contains(logs.String(), "CANARY") {
		t.Fatalf("the controller logged a value:\n%s", logs.String())
	}

	// kubeseal's online flags, through the API server's service proxy.
	exposeController(t, kube, addr)
	online := []string{"--controller-name", "keyway", "--controller-namespace", "keyway-system", "--kubeconfig", env.Kubeconfig}
	poll("the service proxy to reach the controller", func() bool {
		_, err := kube.CoreV1().Services("keyway-system").ProxyGet("http", "keyway", "", "/healthz", nil).DoRaw(ctx)
		return err == nil
	})
	fetched := keyway(append([]string{"seal", "--fetch-cert"}, online...)...)
	if want, _ := os.ReadFile(cert); fetched != string(want) {
		t.Fatalf("--fetch-cert = %q", fetched)
	}
	// Without the flags: kube-system/sealed-secrets-controller does not exist, and the one
	// Service with keyway's chart's controller labels is used.
	if found := keyway("seal", "--fetch-cert", "--kubeconfig", env.Kubeconfig); found != fetched {
		t.Fatalf("--fetch-cert without --controller-name found %q", found)
	}
	viaController := keyway(append([]string{"seal", "-f", secretFile}, online...)...)
	vf := filepath.Join(dir, "via.json")
	os.WriteFile(vf, []byte(viaController), 0o600)
	if _, stderr, err := runTool(t, "keyway", nil, dir, append([]string{"seal", "--validate", "-f", vf}, online...)...); err != nil || !strings.Contains(stderr, "1 SealedSecret(s) valid") {
		t.Fatalf("online validate: %v %s", err, stderr)
	}
	if re := keyway(append([]string{"seal", "--re-encrypt", "-f", vf}, online...)...); !strings.Contains(re, `"kind": "SealedSecret"`) {
		t.Fatalf("online re-encrypt: %s", re)
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

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() && !ip.IP.IsLinkLocalUnicast() {
			return ip.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address: the API server will not proxy to loopback")
	return ""
}

// exposeController makes Service keyway-system/keyway reach the controller at addr the way
// a Deployment's would: a Pod (status set by hand, there is no kubelet) holding the address,
// and an EndpointSlice pointing at it; the API server proxies only to Pod addresses. The
// single port is unnamed, like upstream's, which is what kubeseal's proxy path selects.
func exposeController(t *testing.T, kube kubernetes.Interface, addr string) {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	ctx := t.Context()
	ns := "keyway-system"
	pod, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "keyway-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "keyway", Image: "keyway"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = host
	pod.Status.PodIPs = []corev1.PodIP{{IP: host}}
	if _, err := kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "keyway", Namespace: ns, Labels: map[string]string{"app.kubernetes.io/name": "keyway", "app.kubernetes.io/component": "controller"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: int32(port)}}}}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	name, p32 := "", int32(port)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "keyway-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "keyway"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "keyway-0"}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p32}},
	}
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestControllerFailover: two `keyway controller` replicas share a Lease; when the leader is
// killed (SIGKILL: no release), the other takes over and unseals new work within the lease
// duration plus a few seconds.
func TestControllerFailover(t *testing.T) {
	env, kube := sealedSecretsCluster(t, "keyway-system", "app")
	ctx := t.Context()
	dir := t.TempDir()
	if _, stderr, err := runTool(t, "keyway", nil, dir, "keys", "generate", "-n", "keyway-system", "--key-bits", "2048", "--kubeconfig", env.Kubeconfig); err != nil {
		t.Fatalf("keys generate: %v\n%s", err, stderr)
	}
	type replica struct {
		cmd  *exec.Cmd
		logs *syncBuffer
	}
	start := func() replica {
		cmd := exec.Command("keyway", "controller", "-n", "keyway-system", "--listen", "127.0.0.1:0", "--kubeconfig", env.Kubeconfig,
			"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		r := replica{cmd: cmd, logs: &syncBuffer{}}
		cmd.Stderr = r.logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return r
	}
	replicas := []replica{start(), start()}
	leader := -1
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for i, r := range replicas {
			if strings.Contains(r.logs.String(), "started leading") {
				leader = i
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no replica leads; logs:\n%s\n---\n%s", replicas[0].logs.String(), replicas[1].logs.String())
	}
	standby := replicas[1-leader]
	if strings.Contains(standby.logs.String(), "started leading") {
		t.Fatal("both replicas lead")
	}
	killed := time.Now()
	if err := replicas[leader].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// New work, sealed with the ring's key, arrives while nobody leads.
	keys, err := sealing.Ring{Client: kube, Namespace: "keyway-system"}.Keys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("ring: %v", err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "after-failover", Namespace: "app"}, StringData: map[string]string{"k": "CANARY-failover"}}
	ss, err := sealing.Seal(rand.Reader, &keys[0].Private.PublicKey, s, sealing.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ss)
	var obj unstructured.Unstructured
	_ = json.Unmarshal(raw, &obj.Object)
	if _, err := dynamic.NewForConfigOrDie(env.Config).Resource(sealedsecrets.SealedSecretGVR).Namespace("app").Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		got, err := kube.CoreV1().Secrets("app").Get(ctx, "after-failover", metav1.GetOptions{})
		return err == nil && string(got.Data["k"]) == "CANARY-failover", nil
	}); err != nil {
		t.Fatalf("the standby did not unseal new work; its log:\n%s", standby.logs.String())
	}
	t.Logf("leader killed; the standby unsealed new work %.1f s later (lease duration 4 s)", time.Since(killed).Seconds())
	if !strings.Contains(standby.logs.String(), "started leading") {
		t.Fatal("the Secret appeared but the standby never logged leading")
	}
	if strings.Contains(standby.logs.String(), "CANARY") {
		t.Fatal("the controller logged a value")
	}
}

// sealedSecretsCluster starts a real API server of its own with the SealedSecret CRD and
// the namespaces given.
func sealedSecretsCluster(t *testing.T, namespaces ...string) (*testenv.Env, kubernetes.Interface) {
	t.Helper()
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	crd, _ := os.ReadFile("../../examples/install/crds.yaml") // keyway crds: SealedSecret and External Secrets
	if err := env.InstallCRDs(t.Context(), crd); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(env.Config)
	for _, ns := range namespaces {
		if _, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return env, kube
}
