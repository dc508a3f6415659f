package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// addSpoke registers spoke with the hub as `argocd cluster add` does: a service account with
// cluster-admin on the spoke, and an Argo CD cluster Secret named name in the hub's
// keyway-system holding its token and the spoke's CA. It returns the token.
func addSpoke(tb testing.TB, hub kubernetes.Interface, spoke *testenv.Env, name string) string {
	tb.Helper()
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(spoke.Config)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "keyway-manager", Namespace: "kube-system"}}
	if _, err := kube.CoreV1().ServiceAccounts("kube-system").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "keyway-manager"}, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "keyway-manager", Namespace: "kube-system"}}}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	tr, err := kube.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "keyway-manager", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"bearerToken": tr.Status.Token, "tlsClientConfig": map[string]any{"caData": spoke.Config.CAData}})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-" + name, Namespace: "keyway-system", Labels: map[string]string{"argocd.argoproj.io/secret-type": "cluster"}},
		StringData: map[string]string{"name": name, "server": spoke.Config.Host, "config": string(raw)}}
	if _, err := hub.CoreV1().Secrets("keyway-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	return tr.Status.Token
}

// TestDaemonClusters runs the daemon on a hub API server deploying to a spoke API server
// reached through an Argo CD cluster Secret with a service-account bearer token, beside a
// destination that cannot be reached.
func TestDaemonClusters(t *testing.T) {
	ctx := t.Context()
	start := func() (*testenv.Env, kubernetes.Interface) {
		env, err := testenv.Start(ctx, testenv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.Stop() })
		return env, kubernetes.NewForConfigOrDie(env.Config)
	}
	hubEnv, hub := start()
	spokeEnv, spoke := start()
	if _, err := hub.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := addSpoke(t, hub, spokeEnv, "spoke")
	clusterSecret := func(name, server string, cfg map[string]any) {
		raw, _ := json.Marshal(cfg)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cluster-" + name, Namespace: "keyway-system", Labels: map[string]string{"argocd.argoproj.io/secret-type": "cluster"}},
			StringData: map[string]string{"name": name, "server": server, "config": string(raw)}}
		if _, err := hub.CoreV1().Secrets("keyway-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	clusterSecret("gone", "https://127.0.0.1:1", map[string]any{"bearerToken": "x", "tlsClientConfig": map[string]any{"insecure": true}})

	work := t.TempDir()
	repos := filepath.Join(work, "git")
	g := gitWork{t, filepath.Join(repos, "fleet.git")}
	_ = os.MkdirAll(g.dir, 0o755)
	g.git("init", "-q", "-b", "main")
	child := func(name, dest string, finalizer bool) string {
		fin := ""
		if finalizer {
			fin = "  finalizers: [resources-finalizer.argocd.argoproj.io]\n"
		}
		return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name + "\n  namespace: argocd\n" + fin +
			"spec:\n  project: default\n  source: {repoURL: https://git.example/fleet.git, targetRevision: main, path: workload}\n" +
			"  destination: {name: " + dest + ", namespace: shop}\n  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}\n"
	}
	g.commit("fleet", map[string]string{
		"apps/to-spoke.yaml": child("to-spoke", "spoke", true),
		"apps/to-gone.yaml":  child("to-gone", "gone", false),
		"workload/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {region: eu}\n",
	})
	root := filepath.Join(work, "root.yaml")
	_ = os.WriteFile(root, []byte(strings.NewReplacer("https://github.com/your-org/infra-repo.git", "https://git.example/fleet.git", "    directory:\n      recurse: true\n", "").Replace(rootApp)), 0o644)
	once := func(extra ...string) (string, int) {
		cmd := exec.CommandContext(ctx, "keyway", append([]string{"daemon", "--once", "--kubeconfig", hubEnv.Kubeconfig, "--app", root, "--cache-dir", filepath.Join(work, "cache"),
			"--git-rewrite", "https://git.example/=file://" + repos + "/", "--wave-timeout", "30s"}, extra...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if strings.Contains(string(out), token) {
			t.Fatal("the cluster token reached the output")
		}
		return string(out), code
	}
	lineOf := func(out, app string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, app+" ") {
				return l
			}
		}
		t.Fatalf("no line for %s:\n%s", app, out)
		return ""
	}

	out, code := once()
	if code != 1 {
		t.Fatalf("exit %d (the unreachable destination must fail):\n%s", code, out)
	}
	if l := lineOf(out, "to-spoke"); !strings.Contains(l, "Synced") || !strings.Contains(l, "Healthy") || !strings.Contains(l, "applied=1") {
		t.Fatalf("to-spoke: %q", l)
	}
	if l := lineOf(out, "to-gone"); !strings.Contains(l, "Unknown   Unknown") || !strings.Contains(l, "127.0.0.1:1") {
		t.Fatalf("to-gone: %q", l)
	}
	cm, err := spoke.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || cm.Annotations["argocd.argoproj.io/tracking-id"] != "to-spoke:/ConfigMap:shop/settings" {
		t.Fatalf("spoke ConfigMap: %v %v", err, cm.Annotations)
	}
	if _, err := hub.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the hub got the spoke's ConfigMap: %v", err)
	}
	inv, err := hub.CoreV1().ConfigMaps("keyway-system").Get(ctx, "keyway-app-to-spoke", metav1.GetOptions{})
	if err != nil || inv.Data["cluster"] != spokeEnv.Config.Host {
		t.Fatalf("the inventory stays on the hub and names the cluster: %v %v", err, inv.Data)
	}

	// The guide's ApplicationSet, unchanged but for the repository: every production
	// cluster gets the chart. Labelling the spoke production deploys to it; unlabelling
	// removes the generated application (its objects stay: the template has no finalizer).
	set := filepath.Join(work, "appset.yaml")
	_ = os.WriteFile(set, []byte(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: api-server
spec:
  generators:
    - clusters:
        selector:
          matchLabels:
            environment: production
  template:
    spec:
      source:
        repoURL: https://git.example/fleet.git
        path: workload
        targetRevision: main
      destination:
        server: '{{ server }}'
        namespace: api
      syncPolicy:
        automated:
          prune: true
        syncOptions: [CreateNamespace=true]
`), 0o644)
	runSet := func() (string, int) {
		cmd := exec.CommandContext(ctx, "keyway", "daemon", "--once", "--kubeconfig", hubEnv.Kubeconfig, "--app", set, "--cache-dir", filepath.Join(work, "cache"),
			"--git-rewrite", "https://git.example/=file://"+repos+"/")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	label := func(v string) {
		s, _ := hub.CoreV1().Secrets("keyway-system").Get(ctx, "cluster-spoke", metav1.GetOptions{})
		if v == "" {
			delete(s.Labels, "environment")
		} else {
			s.Labels["environment"] = v
		}
		if _, err := hub.CoreV1().Secrets("keyway-system").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	hasLine := func(out, app string) bool {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, app+" ") {
				return true
			}
		}
		return false
	}
	if out, code := runSet(); code != 0 || hasLine(out, "api-server-spoke") {
		t.Fatalf("before any cluster is production: exit %d\n%s", code, out)
	}
	label("production")
	out, code = runSet()
	if l := lineOf(out, "api-server-spoke"); code != 0 || !strings.Contains(l, "Synced") || !strings.Contains(l, "Healthy") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := spoke.CoreV1().ConfigMaps("api").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Fatalf("the generated application did not deploy to the spoke: %v", err)
	}
	label("")
	if out, _ := runSet(); hasLine(out, "api-server-spoke") {
		t.Fatalf("still generated after the label went:\n%s", out)
	}
	if _, err := hub.CoreV1().ConfigMaps("keyway-system").Get(ctx, "keyway-app-api-server-spoke", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the removed application's inventory: %v", err)
	}
	if _, err := spoke.CoreV1().ConfigMaps("api").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Fatalf("without the finalizer the resources stay: %v", err)
	}

	// The git directories generator, with goTemplate: one application per directory.
	g.commit("envs", map[string]string{
		"envs/dev/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env}\ndata: {tier: dev}\n",
		"envs/test/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env}\ndata: {tier: test}\n",
		"envs/prod/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env}\ndata: {tier: prod}\n",
	})
	_ = os.WriteFile(set, []byte(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: envs}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - git:
      repoURL: https://git.example/fleet.git
      revision: main
      directories: [{path: 'envs/*'}, {path: envs/prod, exclude: true}]
  template:
    metadata: {name: 'env-{{.path.basename}}'}
    spec:
      project: default
      source: {repoURL: https://git.example/fleet.git, targetRevision: main, path: '{{.path.path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: '{{.path.basename | upper | lower}}'}
      syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`), 0o644)
	out, code = runSet()
	if code != 0 || !hasLine(out, "env-dev") || !hasLine(out, "env-test") || hasLine(out, "env-prod") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if cm, err := hub.CoreV1().ConfigMaps("test").Get(ctx, "env", metav1.GetOptions{}); err != nil || cm.Data["tier"] != "test" {
		t.Fatalf("env-test: %v", err)
	}

	// The child goes, with the resources finalizer: its objects go from the spoke. Both
	// children leaving is a prune of all the root holds: held under --max-prune 50, done
	// with 100.
	g.commit("spoke out", map[string]string{"apps/to-spoke.yaml": "", "apps/to-gone.yaml": "", "apps/local.yaml": child("local", "in-cluster", false)})
	if out, code := once(); code != 1 || !strings.Contains(out, "this sync would prune 2 of the application's 2 objects") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, err := spoke.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Fatalf("a held sync removed a child's objects: %v", err)
	}
	if out, code := once("--max-prune", "100"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, err := spoke.CoreV1().ConfigMaps("shop").Get(ctx, "settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the spoke's ConfigMap after its application left: %v", err)
	}

	// Hostile ApplicationSets inside the repository: one whose template never ends, one
	// that would blow up memory, and one reading the cluster Secrets through the clusters
	// generator (refused for repositories by default). Each fails its own parent, quickly.
	repoSet := func(name, generator, path string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: " + name + "}\nspec:\n  goTemplate: true\n  generators:\n" + generator +
			"  template:\n    metadata: {name: '" + name + "-{{.name}}'}\n    spec:\n      project: default\n      source: {repoURL: https://git.example/fleet.git, targetRevision: main, path: '" + path + "'}\n" +
			"      destination: {server: https://kubernetes.default.svc, namespace: shop}\n"
	}
	list := "  - list: {elements: [{name: a}]}\n"
	for _, c := range []struct{ file, body, want string }{
		{"apps/set-loop.yaml", repoSet("loop", list, `{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}`), "template over its budget"},
		{"apps/set-mem.yaml", repoSet("mem", list, `{{ indent 1500000000 "" }}`), "template over its budget"},
		{"apps/set-clusters.yaml", repoSet("peek", "  - clusters: {}\n", "{{ .metadata.annotations }}"), "clusters generator is only for the operator's"},
	} {
		g.commit("hostile set", map[string]string{c.file: c.body})
		start := time.Now()
		out, code := once()
		if l := lineOf(out, "root-app"); code != 1 || !strings.Contains(l, c.want) {
			t.Fatalf("%s: exit %d\n%s", c.file, code, out)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("%s: the daemon's pass took %s", c.file, took)
		}
		if strings.Contains(out, token) {
			t.Fatalf("%s: a cluster token reached the output", c.file)
		}
		g.commit("drop the set", map[string]string{c.file: ""})
	}

	// An Application named after the envs set's old inventory key cannot take the set's
	// applications: the set keeps them, and their objects stay.
	g.commit("clash", map[string]string{"apps/clash.yaml": strings.Replace(child("appset.envs", "in-cluster", true), "namespace: shop", "namespace: clash", 1)})
	if out, code := once(); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	out, code = runSet()
	if code != 0 || !hasLine(out, "env-dev") || !hasLine(out, "env-test") {
		t.Fatalf("the set after the clash: exit %d\n%s", code, out)
	}
	for _, ns := range []string{"dev", "test"} {
		if _, err := hub.CoreV1().ConfigMaps(ns).Get(ctx, "env", metav1.GetOptions{}); err != nil {
			t.Fatalf("env-%s's objects after an application named appset.envs synced: %v", ns, err)
		}
	}
	if inv, err := hub.CoreV1().ConfigMaps("keyway-system").Get(ctx, "keyway-appset-envs", metav1.GetOptions{}); err != nil || !strings.Contains(inv.Data["children"], "env-dev") {
		t.Fatalf("the set's own inventory: %v %v", err, inv.Data)
	}
}
