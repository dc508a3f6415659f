package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

// TestDisasterRecoveryDrill is the guide's drill: the App of Apps tree — a ConfigMap, a
// SealedSecret and an ExternalSecret — synced into cluster A; `keyway daemon export`; a
// fresh cluster B (its own etcd); `keyway daemon import`; the controller and the daemon
// started there; every object in B equals A's, Secrets included.
func TestDisasterRecoveryDrill(t *testing.T) {
	ctx := t.Context()
	crds, _ := os.ReadFile("../../examples/install/crds.yaml")
	type cluster struct {
		env  *testenv.Env
		kube kubernetes.Interface
		dyn  dynamic.Interface
	}
	const canary = "canary-drill-8b2e"
	work := t.TempDir()
	startCluster := func() cluster {
		env, err := testenv.Start(ctx, testenv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.Stop() })
		if err := env.InstallCRDs(ctx, crds); err != nil {
			t.Fatal(err)
		}
		kube := kubernetes.NewForConfigOrDie(env.Config)
		_, _ = kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{})
		return cluster{env, kube, dynamic.NewForConfigOrDie(env.Config)}
	}
	startController := func(c cluster) string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		cctx, cancel := context.WithCancel(ctx)
		cmd := exec.CommandContext(cctx, "keyway", "controller", "--kubeconfig", c.env.Kubeconfig, "-n", "kube-system", "--listen", addr, "--key-bits", "2048", "--leader-elect=false")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
		cmd.Stderr = &syncBuffer{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = cmd.Wait() })
		return addr
	}
	daemonOnce := func(c cluster, app string) {
		cmd := exec.CommandContext(ctx, "keyway", "daemon", "--once", "--kubeconfig", c.env.Kubeconfig, "--app", app, "--cache-dir", filepath.Join(work, "cache-"+filepath.Base(c.env.Kubeconfig)),
			"--git-rewrite", "https://github.com/your-org/=file://"+filepath.Join(work, "git")+"/", "--wave-timeout", "60s")
		out, err := cmd.CombinedOutput()
		if err != nil || bytes.Contains(out, []byte(canary)) {
			t.Fatalf("daemon --once: %v\n%s", err, out)
		}
	}

	// Cluster A.
	a := startCluster()
	addrA := startController(a)
	cert := filepath.Join(work, "cert.pem")
	waitFor(t, 60*time.Second, "A's certificate", func() bool {
		resp, err := http.Get("http://" + addrA + "/v1/cert.pem")
		if err != nil || resp.StatusCode != 200 {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return os.WriteFile(cert, b, 0o644) == nil
	})
	plain := filepath.Join(work, "db.yaml")
	_ = os.WriteFile(plain, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {password: "+canary+"-sealed}\n"), 0o600)
	sealed, err := exec.CommandContext(ctx, "keyway", "seal", "--cert", cert, "-f", plain, "-o", "yaml").Output()
	if err != nil {
		t.Fatal(err)
	}
	g := gitWork{t, filepath.Join(work, "git", "infra-repo.git")}
	_ = os.MkdirAll(g.dir, 0o755)
	g.git("init", "-q", "-b", "main")
	g.commit("platform", map[string]string{
		"apps/platform.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: platform, namespace: argocd}\nspec:\n  project: default\n" +
			"  source: {repoURL: https://github.com/your-org/infra-repo.git, targetRevision: main, path: platform}\n" +
			"  destination: {server: https://kubernetes.default.svc, namespace: prod}\n  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}\n",
		"platform/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {region: eu}\n",
		"platform/sealed.yaml": string(sealed),
		"platform/store.yaml": "apiVersion: external-secrets.io/v1beta1\nkind: SecretStore\nmetadata: {name: backend, annotations: {argocd.argoproj.io/sync-wave: \"-1\"}}\n" +
			"spec:\n  provider:\n    fake:\n      data:\n      - {key: prod/database-url, value: " + canary + "-url}\n",
		"platform/es.yaml": "apiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {name: db-credentials}\nspec:\n  refreshInterval: 1h\n" +
			"  secretStoreRef: {name: backend, kind: SecretStore}\n  target: {name: db-credentials}\n  data:\n  - {secretKey: DATABASE_URL, remoteRef: {key: prod/database-url}}\n",
	})
	root := filepath.Join(work, "root-app.yaml")
	_ = os.WriteFile(root, []byte(rootApp), 0o644)
	repoSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "infra-repo", Namespace: "keyway-system", Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
		StringData: map[string]string{"url": "https://github.com/your-org/infra-repo.git", "password": canary + "-token"}}
	if _, err := a.kube.CoreV1().Secrets("keyway-system").Create(ctx, repoSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	daemonOnce(a, root)
	secretOf := func(c cluster, name string) map[string][]byte {
		s, err := c.kube.CoreV1().Secrets("prod").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return s.Data
	}
	waitFor(t, 30*time.Second, "A's unsealed and synced Secrets", func() bool {
		return string(secretOf(a, "db")["password"]) == canary+"-sealed" && string(secretOf(a, "db-credentials")["DATABASE_URL"]) == canary+"-url"
	})

	// Export: sensitive, and with the keys. An existing 0644 file at -o, and a link at -o,
	// are replaced by a new 0600 file; the link's target is never written.
	export := filepath.Join(work, "export.yaml")
	if err := os.WriteFile(export, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(work, "link-target")
	if err := os.WriteFile(target, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(work, "export-link.yaml")
	if err := os.Symlink(target, linked); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "keyway", "daemon", "export", "--kubeconfig", a.env.Kubeconfig, "--app", root, "-o", linked).CombinedOutput(); err != nil {
		t.Fatalf("export over a link: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched\n" {
		t.Fatal("export wrote through a link")
	}
	if fi, err := os.Lstat(linked); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export over a link: %v %v", fi.Mode(), err)
	}
	if out, err := exec.CommandContext(ctx, "keyway", "daemon", "export", "--kubeconfig", a.env.Kubeconfig, "--app", root, "--include-sealing-keys", "-o", export).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if fi, _ := os.Stat(export); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the export is mode %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(export); !strings.HasPrefix(string(b), "# keyway daemon export: SENSITIVE") {
		t.Fatalf("the export does not say it is sensitive:\n%.200s", b)
	}

	// Cluster B, from nothing. An export naming an application "../x" is refused whole.
	b := startCluster()
	evil := filepath.Join(work, "evil-export.yaml")
	if err := os.WriteFile(evil, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: planted, namespace: keyway-system}\ndata: {a: Yg==}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: ../../escaped}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "keyway", "daemon", "import", "--kubeconfig", b.env.Kubeconfig, "-f", evil, "--apps-dir", filepath.Join(work, "evil-apps")).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a DNS-1123 subdomain; nothing was imported") {
		t.Fatalf("import of ../ names: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(work, "escaped.yaml")); err == nil {
		t.Fatal("import wrote outside --apps-dir")
	}
	began := time.Now()
	appsDir := filepath.Join(work, "restored-apps")
	if out, err := exec.CommandContext(ctx, "keyway", "daemon", "import", "--kubeconfig", b.env.Kubeconfig, "-f", export, "--apps-dir", appsDir).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	startController(b)
	daemonOnce(b, appsDir)
	waitFor(t, 60*time.Second, "B's unsealed and synced Secrets", func() bool {
		return string(secretOf(b, "db")["password"]) == canary+"-sealed" && string(secretOf(b, "db-credentials")["DATABASE_URL"]) == canary+"-url"
	})
	t.Logf("recovery: import → every object back in %s", time.Since(began).Round(100*time.Millisecond))

	// Every object in prod, and the repository Secret, equal A's.
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "secrets"},
		{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"},
		{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"},
		{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"},
	} {
		la, _ := a.dyn.Resource(gvr).Namespace("prod").List(ctx, metav1.ListOptions{})
		lb, _ := b.dyn.Resource(gvr).Namespace("prod").List(ctx, metav1.ListOptions{})
		if len(la.Items) == 0 || len(la.Items) != len(lb.Items) {
			t.Fatalf("%s: %d in A, %d in B", gvr.Resource, len(la.Items), len(lb.Items))
		}
		for i := range la.Items {
			if x, y := comparable(&la.Items[i]), comparable(&lb.Items[i]); !reflect.DeepEqual(x, y) {
				jx, _ := json.Marshal(x)
				jy, _ := json.Marshal(y)
				if !strings.Contains(string(jx), canary) {
					t.Fatalf("%s %s differs:\nA %s\nB %s", gvr.Resource, la.Items[i].GetName(), jx, jy)
				}
				t.Fatalf("%s %s differs between A and B", gvr.Resource, la.Items[i].GetName())
			}
		}
	}
	rs, err := b.kube.CoreV1().Secrets("keyway-system").Get(ctx, "infra-repo", metav1.GetOptions{})
	if err != nil || string(rs.Data["password"]) != canary+"-token" {
		t.Fatalf("the repository Secret was not restored: %v", err)
	}
}

// comparable is an object without what differs between clusters by nature: identity,
// versions, timestamps, managed fields, owner UIDs, status timestamps, the kube-root-ca
// ConfigMap's data and the unsealer's proof (it binds the SealedSecret's UID).
func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	refs := c.GetOwnerReferences()
	for i := range refs {
		refs[i].UID = ""
	}
	c.SetOwnerReferences(refs)
	unstructured.RemoveNestedField(c.Object, "status")
	unstructured.RemoveNestedField(c.Object, "metadata", "annotations", sealedsecrets.AnnotationUnsealedFrom)
	if len(c.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	if c.GetName() == "kube-root-ca.crt" {
		unstructured.RemoveNestedField(c.Object, "data")
	}
	return c.Object
}
