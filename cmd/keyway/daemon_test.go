package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/apps"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

const daemonCanary = "canary-daemon-7f3e9b21"

// guideRepo is the seed guide's App of Apps tree: root-app.yaml (kept outside the
// repository, as the guide applies it by hand) and apps/ with child Applications for a
// plain directory, a Helm chart and a kustomization.
var guideRepo = map[string]string{
	"apps/monitoring/prometheus.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: prometheus
  namespace: argocd
  annotations: {argocd.argoproj.io/sync-wave: "-1"}
spec:
  project: default
  source: {repoURL: https://github.com/your-org/infra-repo.git, targetRevision: main, path: services/prometheus}
  destination: {server: https://kubernetes.default.svc, namespace: monitoring}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`,
	"apps/backend/api-server.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: api-server
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/your-org/infra-repo.git
    targetRevision: main
    path: charts/api-server
    helm: {valueFiles: [values-prod.yaml], parameters: [{name: image.tag, value: "1.4.2"}]}
  destination: {server: https://kubernetes.default.svc, namespace: backend}
  ignoreDifferences:
  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, RespectIgnoreDifferences=true]
`,
	"apps/frontend/web-app.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web-app
  namespace: argocd
  annotations: {argocd.argoproj.io/sync-wave: "2"}
spec:
  project: default
  source: {repoURL: https://github.com/your-org/infra-repo.git, targetRevision: main, path: frontend/overlays/prod}
  destination: {server: https://kubernetes.default.svc, namespace: frontend}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`,
	"services/prometheus/config.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus-config}
data: {scrape_interval: 30s}
`,
	"services/prometheus/rules.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus-rules}
data: {rules: "[]"}
`,
	"services/prometheus/extra.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus-extra}
data: {a: "1"}
`,
	"services/prometheus/migrate.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: busybox}]
`,
	"charts/api-server/Chart.yaml":       "apiVersion: v2\nname: api-server\nversion: 0.1.0\n",
	"charts/api-server/values.yaml":      "replicas: 1\nimage: {tag: latest}\n",
	"charts/api-server/values-prod.yaml": "replicas: 2\n",
	"charts/api-server/templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: api-secret
  annotations: {avp.kubernetes.io/path: "secret/data/myapp"}
type: Opaque
stringData:
  API_KEY: <api-key>
`,
	"charts/api-server/templates/db.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  annotations: {argocd.argoproj.io/sync-wave: "0"}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
`,
	"charts/api-server/templates/api.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  annotations: {argocd.argoproj.io/sync-wave: "1"}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: "api:{{ .Values.image.tag }}"}]}
`,
	"frontend/base/kustomization.yaml":          "resources: [cm.yaml]\n",
	"frontend/base/cm.yaml":                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {theme: dark}\n",
	"frontend/overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n",
}

const rootApp = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: root-app
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/your-org/infra-repo.git
    targetRevision: main
    path: apps/
    directory:
      recurse: true
  destination:
    server: https://kubernetes.default.svc
    namespace: argocd
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
`

// gitWork is a local repository the test commits to.
type gitWork struct {
	t   *testing.T
	dir string
}

func (g gitWork) git(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (g gitWork) commit(msg string, files map[string]string) string {
	g.t.Helper()
	for name, content := range files {
		p := filepath.Join(g.dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				g.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				g.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.git("add", "-A")
	g.git("commit", "-q", "--allow-empty", "-m", msg)
	return g.git("rev-parse", "HEAD")
}

// fakeKubelet stands in for the controllers a bare API server lacks: it marks Deployments
// available and Jobs complete a moment after they appear, and records the order it saw
// Deployments in, with whether the ones before were available by then.
type fakeKubelet struct {
	mu    sync.Mutex
	order []string // namespace/name as first seen
	ready map[string]time.Time
	jobs  []string
}

func (k *fakeKubelet) run(ctx context.Context, kube kubernetes.Interface) {
	k.ready = map[string]time.Time{}
	for ctx.Err() == nil {
		deps, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, d := range deps.Items {
				key := d.Namespace + "/" + d.Name
				k.mu.Lock()
				if !containsStr(k.order, key) {
					k.order = append(k.order, key)
				}
				k.mu.Unlock()
				want := int32(1)
				if d.Spec.Replicas != nil {
					want = *d.Spec.Replicas
				}
				if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == want {
					continue
				}
				time.Sleep(300 * time.Millisecond) // long enough that a daemon not waiting would be seen
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want, ReadyReplicas: want, AvailableReplicas: want}
				if _, err := kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, &d, metav1.UpdateOptions{}); err == nil {
					k.mu.Lock()
					k.ready[key] = time.Now()
					k.mu.Unlock()
				}
			}
		}
		jobs, err := kube.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, j := range jobs.Items {
				if len(j.Status.Conditions) > 0 {
					continue
				}
				now := metav1.Now()
				j.Status = batchv1.JobStatus{StartTime: &now, CompletionTime: &now, Succeeded: 1, Conditions: []batchv1.JobCondition{
					{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
				if _, err := kube.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, &j, metav1.UpdateOptions{}); err == nil {
					k.mu.Lock()
					k.jobs = append(k.jobs, j.Namespace+"/"+j.Name)
					k.mu.Unlock()
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDaemon syncs the guide's App of Apps from a local repository into a real API server
// with `keyway daemon`, then changes git and the cluster underneath it.
func TestDaemon(t *testing.T) {
	env, err := testenv.Start(t.Context(), testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	kube := kubernetes.NewForConfigOrDie(env.Config)
	ctx := t.Context()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyway-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kl := &fakeKubelet{}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	go kl.run(kctx, kube)

	work := t.TempDir()
	repos := filepath.Join(work, "git")
	g := gitWork{t, filepath.Join(repos, "infra-repo.git")}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.git("init", "-q", "-b", "main")
	rev1 := g.commit("guide", guideRepo)
	write := func(name, content string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	appFile := write("root-app.yaml", rootApp)
	secretsFile := write("secrets.yaml", "secret/data/myapp:\n  api-key: "+daemonCanary+"\n")
	base := []string{"daemon", "--kubeconfig", env.Kubeconfig, "--app", appFile, "--git-rewrite", "https://github.com/your-org/=file://" + repos + "/",
		"--secrets-file", secretsFile, "--cache-dir", filepath.Join(work, "cache"), "--wave-timeout", "60s"}
	once := func(extra ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "keyway", append(append(append([]string{}, base...), "--once"), extra...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String()+errb.String(), daemonCanary) {
			t.Fatalf("the canary reached the daemon's output:\n%s\n%s", out.String(), errb.String())
		}
		return out.String(), errb.String(), code
	}
	line := func(t *testing.T, out, app string) string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, app+" ") {
				return l
			}
		}
		t.Fatalf("no line for %s in:\n%s", app, out)
		return ""
	}

	t.Run("the guide's App of Apps syncs with --once", func(t *testing.T) {
		out, errs, code := once()
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		for _, app := range []string{"root-app", "prometheus", "api-server", "web-app"} {
			l := line(t, out, app)
			if !strings.Contains(l, rev1[:12]) || !strings.Contains(l, "Synced") || !strings.Contains(l, "Healthy") {
				t.Fatalf("%s: %q", app, l)
			}
		}
		if l := line(t, out, "api-server"); !strings.Contains(l, "applied=3") {
			t.Fatalf("api-server: %q", l)
		}
		s, err := kube.CoreV1().Secrets("backend").Get(ctx, "api-secret", metav1.GetOptions{})
		if err != nil || string(s.Data["API_KEY"]) != daemonCanary {
			t.Fatalf("api-secret: %v %q", err, s.Data["API_KEY"])
		}
		if id := s.Annotations["argocd.argoproj.io/tracking-id"]; id != "api-server:/Secret:backend/api-secret" {
			t.Fatalf("tracking id %q", id)
		}
		api, _ := kube.AppsV1().Deployments("backend").Get(ctx, "api", metav1.GetOptions{})
		if *api.Spec.Replicas != 2 || api.Spec.Template.Spec.Containers[0].Image != "api:1.4.2" {
			t.Fatalf("api: replicas %d image %s", *api.Spec.Replicas, api.Spec.Template.Spec.Containers[0].Image)
		}
		if _, err := kube.CoreV1().ConfigMaps("frontend").Get(ctx, "prod-web", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		// Waves: db (wave 0) was available before api (wave 1) was created.
		kl.mu.Lock()
		order, dbReady := kl.order, kl.ready["backend/db"]
		jobs := kl.jobs
		kl.mu.Unlock()
		if len(order) < 2 || order[0] != "backend/db" || order[1] != "backend/api" || dbReady.IsZero() {
			t.Fatalf("deployments seen in order %v", order)
		}
		api, _ = kube.AppsV1().Deployments("backend").Get(ctx, "api", metav1.GetOptions{})
		if !api.CreationTimestamp.Time.Add(time.Second).After(dbReady) {
			t.Fatalf("api created at %s, db available at %s", api.CreationTimestamp, dbReady)
		}
		// The PreSync hook ran and, having succeeded, was deleted.
		if !containsStr(jobs, "monitoring/migrate") {
			t.Fatalf("the PreSync job did not run: %v", jobs)
		}
		if _, err := kube.BatchV1().Jobs("monitoring").Get(ctx, "migrate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the HookSucceeded job is still there: %v", err)
		}
		// Inventories hold references, never values.
		cms, _ := kube.CoreV1().ConfigMaps("keyway-system").List(ctx, metav1.ListOptions{LabelSelector: "keyway.dev/inventory"})
		if len(cms.Items) != 4 {
			t.Fatalf("%d inventories", len(cms.Items))
		}
		for _, cm := range cms.Items {
			b, _ := json.Marshal(cm)
			if strings.Contains(string(b), daemonCanary) {
				t.Fatalf("the canary is in inventory %s", cm.Name)
			}
		}
	})

	t.Run("a second sync with nothing to change writes nothing", func(t *testing.T) {
		since := time.Now()
		out, errs, code := once()
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		time.Sleep(time.Second)
		reqs, err := env.Requests(since, "keyway-daemon")
		if err != nil {
			t.Fatal(err)
		}
		writes := 0
		for _, r := range reqs {
			if r.IsWrite() && r.Resource != "leases" {
				writes++
				t.Errorf("write: %s %s %s/%s", r.Verb, r.Resource, r.Namespace, r.Name)
			}
		}
		if len(reqs) == 0 || writes != 0 {
			t.Fatalf("%d requests, %d writes", len(reqs), writes)
		}
		if l := line(t, out, "api-server"); !strings.Contains(l, "applied=0 unchanged=3") {
			t.Fatalf("api-server: %q", l)
		}
	})

	t.Run("keyway diff shows what would change, masks Secrets and writes nothing", func(t *testing.T) {
		diff := func(secrets string) (string, string, int) {
			cmd := exec.CommandContext(ctx, "keyway", "diff", "--kubeconfig", env.Kubeconfig, "--app", appFile, "--git-rewrite", "https://github.com/your-org/=file://"+repos+"/",
				"--secrets-file", secrets, "--cache-dir", filepath.Join(work, "cache"))
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if strings.Contains(out.String()+errb.String(), daemonCanary) {
				t.Fatalf("a secret value reached the diff:\n%s\n%s", out.String(), errb.String())
			}
			return out.String(), errb.String(), code
		}
		since := time.Now()
		if out, errs, code := diff(secretsFile); code != 0 || out != "" {
			t.Fatalf("no change: exit %d\n%s\n%s", code, out, errs)
		}
		defer g.commit("back", map[string]string{"services/prometheus/config.yaml": guideRepo["services/prometheus/config.yaml"], "services/prometheus/leak.yaml": ""})
		g.commit("slower scrape", map[string]string{"services/prometheus/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prometheus-config}\ndata: {scrape_interval: 45s}\n",
			// A secret reference in a ConfigMap: the diff must not print its value either.
			// Masked by structure, whatever the modifier: base64, a digest, a jsonPath
			// sub-value, a value the YAML emitter folds, one with U+2028; a short value
			// ("shop") does not blank out the names that contain it.
			"services/prometheus/leak.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: prometheus-leak}
data:
  key: <path:secret/data/myapp#api-key>
  b64: <path:secret/data/myapp#api-key | base64encode>
  sum: <path:secret/data/myapp#api-key | sha256sum>
  sub: <path:secret/data/myapp#json | jsonPath {.inner.deep}>
  long: <path:secret/data/myapp#long>
  sep: <path:secret/data/myapp#sep>
  short: <path:secret/data/myapp#short>
  dbname: shop2-db
`})
		rotated := write("rotated.yaml", "secret/data/myapp:\n  api-key: "+daemonCanary+"-rotated\n  short: shop\n  long: "+daemonCanary+"-"+strings.Repeat("x", 100)+
			"\n  sep: \"a\\u2028"+daemonCanary+"-sep\"\n  json:\n    inner: {deep: "+daemonCanary+"-deep}\n")
		out, errs, code := diff(rotated)
		sum := sha256.Sum256([]byte(daemonCanary + "-rotated"))
		for _, leak := range []string{base64.StdEncoding.EncodeToString([]byte(daemonCanary + "-rotated")), hex.EncodeToString(sum[:]), "CANARY", "(secret value)2", "\\u2028"} {
			if strings.Contains(out, leak) {
				t.Fatalf("the diff shows %q:\n%s", leak, out)
			}
		}
		for _, want := range []string{"+  b64: (secret value)", "+  sum: (secret value)", "+  sub: (secret value)", "+  long: (secret value)", "+  sep: (secret value)", "+  short: (secret value)", "+  dbname: shop2-db", "name: prometheus-leak"} {
			if !strings.Contains(out, want) {
				t.Fatalf("the diff lacks %q:\n%s", want, out)
			}
		}
		if code != 1 || !strings.Contains(out, "-  scrape_interval: 30s") || !strings.Contains(out, "+  scrape_interval: 45s") ||
			!strings.Contains(out, "# api-server: update /Secret/backend/api-secret") || !strings.Contains(out, "+  API_KEY: (new value)") ||
			!strings.Contains(out, "+  key: (secret value)") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if _, _, code := diff(filepath.Join(work, "no-such-secrets.yaml")); code != 2 {
			t.Fatalf("a failing render: exit %d, want 2", code)
		}
		time.Sleep(time.Second)
		reqs, _ := env.Requests(since, "keyway-daemon")
		for _, r := range reqs {
			if r.IsWrite() {
				t.Fatalf("diff wrote: %s %s %s/%s", r.Verb, r.Resource, r.Namespace, r.Name)
			}
		}
	})

	t.Run("a file removed from git is pruned", func(t *testing.T) {
		g.commit("drop rules", map[string]string{"services/prometheus/rules.yaml": ""})
		out, errs, code := once()
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if l := line(t, out, "prometheus"); !strings.Contains(l, "pruned=1") {
			t.Fatalf("prometheus: %q", l)
		}
		if _, err := kube.CoreV1().ConfigMaps("monitoring").Get(ctx, "prometheus-rules", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("prometheus-rules: %v", err)
		}
	})

	t.Run("a render failure leaves the cluster untouched", func(t *testing.T) {
		g.commit("bad ref", map[string]string{
			"services/prometheus/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prometheus-config}\ndata: {scrape_interval: 10s}\n",
			"services/prometheus/extra.yaml":  "apiVersion: v1\nkind: Secret\nmetadata: {name: prometheus-extra}\nstringData: {k: <path:secret/data/missing#k>}\n",
		})
		out, _, code := once()
		if code != 1 || !strings.Contains(line(t, out, "prometheus"), "render failed, nothing applied or pruned") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		cm, err := kube.CoreV1().ConfigMaps("monitoring").Get(ctx, "prometheus-config", metav1.GetOptions{})
		if err != nil || cm.Data["scrape_interval"] != "30s" {
			t.Fatalf("a failed render changed the cluster: %v %v", err, cm.Data)
		}
		if _, err := kube.CoreV1().ConfigMaps("monitoring").Get(ctx, "prometheus-extra", metav1.GetOptions{}); err != nil {
			t.Fatal("a failed render pruned")
		}
	})

	t.Run("an empty render and a mass prune are held", func(t *testing.T) {
		g.commit("empty", map[string]string{"services/prometheus/config.yaml": "", "services/prometheus/extra.yaml": "", "services/prometheus/migrate.yaml": "",
			"services/prometheus/README.md": "moved\n"})
		out, _, code := once()
		if code != 1 || !strings.Contains(line(t, out, "prometheus"), "the render produced no resources") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// One of the two objects goes: 50%, over a --max-prune of 40.
		rev := g.commit("one of two goes", map[string]string{"services/prometheus/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prometheus-config}\ndata: {scrape_interval: 30s}\n"})
		for range 2 {
			out, _, code = once("--max-prune", "40")
			l := line(t, out, "prometheus")
			if code != 1 || !strings.Contains(l, "would prune 1 of the application's 2 objects, more than --max-prune 40%") {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if _, err := kube.CoreV1().ConfigMaps("monitoring").Get(ctx, "prometheus-extra", metav1.GetOptions{}); err != nil {
				t.Fatal("a held sync pruned")
			}
		}
		// The operator confirms this revision.
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"keyway.dev/confirm-prune":%q}}}`, rev)
		if _, err := kube.CoreV1().ConfigMaps("keyway-system").Patch(ctx, "keyway-app-prometheus", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		out, errs, code := once("--max-prune", "40")
		if code != 0 || !strings.Contains(line(t, out, "prometheus"), "pruned=1") {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
		}
	})

	t.Run("a child application may not name a local path or another repository", func(t *testing.T) {
		g.commit("hostile", map[string]string{"apps/evil.yaml": strings.NewReplacer("name: web-app", "name: evil", "https://github.com/your-org/infra-repo.git", "file:///etc").Replace(guideRepo["apps/frontend/web-app.yaml"])})
		out, _, code := once()
		if code != 1 || !strings.Contains(line(t, out, "evil"), "may use only its root applications' repositories") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		g.commit("hostile 2", map[string]string{"apps/evil.yaml": strings.NewReplacer("name: web-app", "name: evil", "https://github.com/your-org/infra-repo.git", "https://github.com/your-org/other.git").Replace(guideRepo["apps/frontend/web-app.yaml"])})
		out, _, code = once()
		if code != 1 || !strings.Contains(line(t, out, "evil"), "may use only its root applications' repositories") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// A URL under a root's repository that climbs out of it, plain or encoded.
		for _, u := range []string{"https://github.com/your-org/infra-repo.git/../../other", "https://github.com/your-org/infra-repo/%2e%2e/other", "HTTPS://GITHUB.COM/your-org/infra-repo/./../x"} {
			g.commit("dots", map[string]string{"apps/evil.yaml": strings.NewReplacer("name: web-app", "name: evil", "https://github.com/your-org/infra-repo.git", u).Replace(guideRepo["apps/frontend/web-app.yaml"])})
			out, _, code = once()
			if code != 1 || !strings.Contains(line(t, out, "evil"), "dot segment") {
				t.Fatalf("%s: exit %d:\n%s", u, code, out)
			}
		}
		// A kustomization that would run a command through git, a path out of the
		// repository, and a values file on the machine: each refused, nothing run.
		marker := filepath.Join(work, "pwned")
		// Kubernetes-shaped YAML on the host, outside every repository.
		host := filepath.Join(work, "host-manifests")
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-the-host}\ndata: {a: b}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		evil := func(path, helm string) string {
			return `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: evil, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://github.com/your-org/infra-repo.git
    targetRevision: main
    path: ` + path + "\n" + helm + `  destination: {server: https://kubernetes.default.svc, namespace: evil}
  syncPolicy: {automated: {prune: true}}
`
		}
		for _, c := range []struct {
			files map[string]string
			want  string
		}{
			{map[string]string{"evil/kustomization.yaml": "resources: ['file:///x?ref=--upload-pack=touch " + marker + "']\n", "apps/evil.yaml": evil("evil", "")}, "evil"},
			{map[string]string{"apps/evil.yaml": evil("../..", "")}, "leaves the repository"},
			// A committed link to / or up the tree, then a path through it.
			{map[string]string{"rootlink": "symlink:/", "apps/evil.yaml": evil("rootlink"+host, "")}, "leads outside the repository"},
			{map[string]string{"uplink": "symlink:../../../../../../../../../../..", "apps/evil.yaml": evil("uplink"+host, "")}, "leads outside the repository"},
			{map[string]string{"hostlink": "symlink:" + host, "apps/evil.yaml": evil("hostlink", "    directory: {recurse: true}\n")}, "leads outside the repository"},
			// A link to a file on the host inside a directory source is not read.
			{map[string]string{"evil/cm.yaml": "symlink:" + filepath.Join(host, "cm.yaml"), "apps/evil.yaml": evil("evil", "    directory: {recurse: true}\n")}, "evil"},
			{map[string]string{"apps/evil.yaml": evil("charts/api-server", "    helm: {valueFiles: [/etc/passwd]}\n")}, "must be a path inside the repository"},
		} {
			c.files["evil/README.md"] = "x\n"
			g.commit("hostile", c.files)
			out, _, code := once()
			if l := line(t, out, "evil"); code != 1 || !strings.Contains(l, "Degraded") || !strings.Contains(l, c.want) {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a kustomization ran a command")
			}
			if _, err := kube.CoreV1().ConfigMaps("evil").Get(ctx, "from-the-host", metav1.GetOptions{}); err == nil {
				t.Fatal("a file of the host was applied")
			}
			for name := range c.files {
				if name != "apps/evil.yaml" && name != "evil/README.md" && name != "evil/kustomization.yaml" {
					g.commit("drop "+name, map[string]string{name: ""})
				}
			}
		}
		g.commit("peace", map[string]string{"apps/evil.yaml": "", "evil/kustomization.yaml": "", "evil/README.md": ""})
		if out, _, code := once(); code != 0 {
			t.Fatalf("after the hostile applications left: exit %d\n%s", code, out)
		}
	})

	t.Run("https with credentials from an Argo CD repository Secret", func(t *testing.T) {
		h := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Env: []string{"GIT_PROJECT_ROOT=" + repos, "GIT_HTTP_EXPORT_ALL=1"}}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "repo-token-1" {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "auth", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		}))
		defer srv.Close()
		url := srv.URL + "/infra-repo.git"
		app := write("remote-app.yaml", strings.NewReplacer("name: root-app", "name: remote", "https://github.com/your-org/infra-repo.git", url,
			"path: apps/", "path: frontend/base", "namespace: argocd", "namespace: remote", "    directory:\n      recurse: true\n", "").Replace(rootApp))
		args := []string{"daemon", "--once", "--kubeconfig", env.Kubeconfig, "--app", app, "--cache-dir", filepath.Join(work, "cache")}
		out, err := exec.CommandContext(ctx, "keyway", args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refused the credentials") {
			t.Fatalf("without credentials: %v\n%s", err, out)
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "infra-repo", Namespace: "keyway-system", Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
			StringData: map[string]string{"url": url, "username": "ci", "password": "repo-token-1"}}
		if _, err := kube.CoreV1().Secrets("keyway-system").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err = exec.CommandContext(ctx, "keyway", args...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "repo-token-1") {
			t.Fatalf("with the repository Secret: %v\n%s", err, out)
		}
		if _, err := kube.CoreV1().ConfigMaps("remote").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a Secret rendered with --seal-to arrives as a SealedSecret and is unsealed", func(t *testing.T) {
		crds, _ := os.ReadFile("../../examples/install/crds.yaml")
		if err := env.InstallCRDs(ctx, crds); err != nil {
			t.Fatal(err)
		}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ctl := exec.CommandContext(cctx, "keyway", "controller", "--kubeconfig", env.Kubeconfig, "-n", "keyway-system", "--listen", addr,
			"--key-bits", "2048", "--syncer=false", "--leader-elect=false")
		var logs syncBuffer
		ctl.Stderr = &logs
		if err := ctl.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = ctl.Wait() }()
		cert := filepath.Join(work, "cert.pem")
		waitFor(t, 60*time.Second, "the certificate", func() bool {
			resp, err := http.Get("http://" + addr + "/v1/cert.pem")
			if err != nil || resp.StatusCode != 200 {
				return false
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			return os.WriteFile(cert, b.Bytes(), 0o644) == nil
		})
		g.commit("sealed", map[string]string{"sealed/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/myapp#api-key>, retired: old-value}\n"})
		app := write("sealed-app.yaml", strings.NewReplacer("name: root-app", "name: sealed", "path: apps/", "path: sealed", "namespace: argocd", "namespace: sealed").Replace(rootApp))
		cmd := exec.CommandContext(ctx, "keyway", "daemon", "--once", "--kubeconfig", env.Kubeconfig, "--app", app, "--cache-dir", filepath.Join(work, "cache"),
			"--git-rewrite", "https://github.com/your-org/=file://"+repos+"/", "--secrets-file", secretsFile, "--seal-to", cert)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), daemonCanary) {
			t.Fatalf("%v\n%s", err, out)
		}
		ss, err := dynamic.NewForConfigOrDie(env.Config).Resource(sealedsecrets.SealedSecretGVR).Namespace("sealed").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(ss.Object); strings.Contains(string(b), daemonCanary) {
			t.Fatal("the SealedSecret holds the plaintext")
		}
		if _, err := kube.CoreV1().Secrets("sealed").Get(ctx, "db", metav1.GetOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the unsealed Secret", func() bool {
			s, err := kube.CoreV1().Secrets("sealed").Get(ctx, "db", metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == daemonCanary && string(s.Data["retired"]) == "old-value"
		})
		// A key removed in git leaves the SealedSecret, and the unsealed Secret with it.
		g.commit("retire a key", map[string]string{"sealed/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: <path:secret/data/myapp#api-key>}\n"})
		cmd = exec.CommandContext(ctx, "keyway", "daemon", "--once", "--kubeconfig", env.Kubeconfig, "--app", app, "--cache-dir", filepath.Join(work, "cache"),
			"--git-rewrite", "https://github.com/your-org/=file://"+repos+"/", "--secrets-file", secretsFile, "--seal-to", cert)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		waitFor(t, 30*time.Second, "the retired key gone from the unsealed Secret", func() bool {
			s, err := kube.CoreV1().Secrets("sealed").Get(ctx, "db", metav1.GetOptions{})
			_, kept := s.Data["retired"]
			return err == nil && !kept && string(s.Data["password"]) == daemonCanary
		})
	})

	t.Run("the running daemon reverts drift and keeps an HPA's replicas", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		hookSecret := write("webhook-secret", "a-long-shared-webhook-secret\n")
		cmd := exec.CommandContext(dctx, "keyway", append(append([]string{}, base...), "--interval", "1h", "--leader-elect=false", "--status-addr", addr,
			"--webhook-secret-file", hookSecret)...)
		var logs syncBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		var apps []map[string]any
		waitFor(t, 60*time.Second, "the first sync", func() bool {
			resp, err := http.Get("http://" + addr + "/apps")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			apps = nil
			return json.NewDecoder(resp.Body).Decode(&apps) == nil && len(apps) == 4
		})
		// An HPA's scale (a replica count other than git's) stays; a changed image goes back.
		api, _ := kube.AppsV1().Deployments("backend").Get(ctx, "api", metav1.GetOptions{})
		five := int32(5)
		api.Spec.Replicas = &five
		api.Spec.Template.Spec.Containers[0].Image = "attacker:latest"
		if _, err := kube.AppsV1().Deployments("backend").Update(ctx, api, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		defer func() {
			if t.Failed() {
				t.Log(logs.String())
			}
		}()
		waitFor(t, 20*time.Second, "the image reverted", func() bool {
			d, err := kube.AppsV1().Deployments("backend").Get(ctx, "api", metav1.GetOptions{})
			return err == nil && d.Spec.Template.Spec.Containers[0].Image == "api:1.4.2"
		})
		t.Logf("drift reverted in %s", time.Since(start).Round(10*time.Millisecond))
		d, _ := kube.AppsV1().Deployments("backend").Get(ctx, "api", metav1.GetOptions{})
		if *d.Spec.Replicas != 5 {
			t.Fatalf("replicas %d: ignoreDifferences /spec/replicas was not respected", *d.Spec.Replicas)
		}
		// A deleted object comes back.
		if err := kube.CoreV1().ConfigMaps("frontend").Delete(ctx, "prod-web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "prod-web recreated", func() bool {
			_, err := kube.CoreV1().ConfigMaps("frontend").Get(ctx, "prod-web", metav1.GetOptions{})
			return err == nil
		})
		for _, path := range []string{"/apps", "/metrics"} {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if strings.Contains(b.String(), daemonCanary) || resp.StatusCode != 200 {
				t.Fatalf("%s: status %d, canary present %v", path, resp.StatusCode, strings.Contains(b.String(), daemonCanary))
			}
			if path == "/metrics" && !strings.Contains(b.String(), "keyway_daemon_syncs_total") {
				t.Fatalf("/metrics lacks keyway_daemon_syncs_total")
			}
		}
		// A push webhook syncs at once (the poll interval is an hour); unsigned or
		// wrongly signed pushes are refused.
		g.commit("light theme", map[string]string{"frontend/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {theme: light}\n"})
		defer g.commit("dark theme", map[string]string{"frontend/base/cm.yaml": guideRepo["frontend/base/cm.yaml"]})
		payload := []byte(`{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/your-org/infra-repo","clone_url":"https://github.com/your-org/infra-repo.git"}}`)
		post := func(headers map[string]string) int {
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/webhook", bytes.NewReader(payload))
			req.Header.Set("X-GitHub-Event", "push")
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		sign := func(key string) string {
			m := hmac.New(sha256.New, []byte(key))
			m.Write(payload)
			return "sha256=" + hex.EncodeToString(m.Sum(nil))
		}
		if c := post(nil); c != http.StatusUnauthorized {
			t.Fatalf("unsigned push: %d", c)
		}
		if c := post(map[string]string{"X-Hub-Signature-256": sign("guessed")}); c != http.StatusUnauthorized {
			t.Fatalf("wrongly signed push: %d", c)
		}
		time.Sleep(time.Second)
		if cm, _ := kube.CoreV1().ConfigMaps("frontend").Get(ctx, "prod-web", metav1.GetOptions{}); cm.Data["theme"] != "dark" {
			t.Fatal("a refused webhook synced")
		}
		pushed := time.Now()
		if c := post(map[string]string{"X-Hub-Signature-256": sign("a-long-shared-webhook-secret")}); c != http.StatusOK {
			t.Fatalf("signed push: %d", c)
		}
		waitFor(t, 20*time.Second, "the pushed change", func() bool {
			cm, err := kube.CoreV1().ConfigMaps("frontend").Get(ctx, "prod-web", metav1.GetOptions{})
			return err == nil && cm.Data["theme"] == "light"
		})
		t.Logf("push to applied: %s", time.Since(pushed).Round(10*time.Millisecond))
		// The same delivery again is a replay; the HMAC key is not a GitLab token.
		if c := post(map[string]string{"X-Hub-Signature-256": sign("a-long-shared-webhook-secret")}); c != http.StatusConflict {
			t.Fatalf("a replayed push: %d, want 409", c)
		}
		if c := post(map[string]string{"X-Gitlab-Token": "a-long-shared-webhook-secret"}); c != http.StatusUnauthorized {
			t.Fatalf("the HMAC key as a GitLab token: %d, want 401", c)
		}
		if strings.Contains(logs.String(), daemonCanary) {
			t.Fatal("the canary reached the logs")
		}
	})

	t.Run("a child application that leaves git: orphaned, or deleted with the resources finalizer", func(t *testing.T) {
		g.commit("web-app goes", map[string]string{"apps/frontend/web-app.yaml": ""})
		if out, errs, code := once(); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if _, err := kube.CoreV1().ConfigMaps("frontend").Get(ctx, "prod-web", metav1.GetOptions{}); err != nil {
			t.Fatalf("without the finalizer the resources stay: %v", err)
		}
		if _, err := kube.CoreV1().ConfigMaps("keyway-system").Get(ctx, "keyway-app-web-app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the inventory of the removed child: %v", err)
		}
		child := strings.NewReplacer("name: web-app\n", "name: web-tmp\n  finalizers: [resources-finalizer.argocd.argoproj.io]\n", "namespace: frontend", "namespace: web-tmp").Replace(guideRepo["apps/frontend/web-app.yaml"])
		g.commit("web-tmp", map[string]string{"apps/frontend/web-tmp.yaml": child})
		if out, errs, code := once(); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if _, err := kube.CoreV1().ConfigMaps("web-tmp").Get(ctx, "prod-web", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		g.commit("web-tmp goes", map[string]string{"apps/frontend/web-tmp.yaml": ""})
		if out, errs, code := once(); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		if _, err := kube.CoreV1().ConfigMaps("web-tmp").Get(ctx, "prod-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("with the finalizer the resources go: %v", err)
		}
	})

	t.Run("a wave that never gets healthy ends in Degraded with the reason; its parent stays Healthy", func(t *testing.T) {
		stuck := strings.NewReplacer("name: web-app", "name: stuck", "path: frontend/overlays/prod", "path: stuck", "namespace: frontend", "namespace: stuck").Replace(guideRepo["apps/frontend/web-app.yaml"])
		g.commit("stuck", map[string]string{"apps/stuck.yaml": stuck,
			"stuck/pvc.yaml": "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"})
		out, _, code := once("--wave-timeout", "2s")
		l := line(t, out, "stuck")
		if code != 1 || !strings.Contains(l, "Degraded") || !strings.Contains(l, "did not become healthy within 2s: PersistentVolumeClaim data is") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// As Argo CD since 1.8: the parent's health is its own, not its children's.
		if l := line(t, out, "root-app"); !strings.Contains(l, "Synced") || !strings.Contains(l, "Healthy") {
			t.Fatalf("a degraded child made its parent %q", l)
		}
		g.commit("unstuck", map[string]string{"apps/stuck.yaml": "", "stuck/pvc.yaml": ""})
	})

	t.Run("an AppProject bounds repositories, destinations and kinds", func(t *testing.T) {
		project := `apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: team-a, namespace: argocd}
spec:
  sourceRepos: ['https://github.com/your-org/*']
  destinations: [{server: https://kubernetes.default.svc, namespace: 'team-a*'}]
  namespaceResourceWhitelist: [{group: '', kind: ConfigMap}]
---
`
		app := func(ns, repo string) string {
			return project + strings.NewReplacer("name: root-app", "name: team-a", "project: default", "project: team-a", "path: apps/", "path: team-a",
				"namespace: argocd\nspec", "namespace: argocd\nspec", "    namespace: argocd", "    namespace: "+ns,
				"https://github.com/your-org/infra-repo.git", repo).Replace(rootApp)
		}
		run := func(appYAML string) (string, int) {
			f := write("team-a.yaml", appYAML)
			cmd := exec.CommandContext(ctx, "keyway", "daemon", "--once", "--kubeconfig", env.Kubeconfig, "--app", f, "--cache-dir", filepath.Join(work, "cache"),
				"--git-rewrite", "https://github.com/your-org/=file://"+repos+"/", "--git-rewrite", "https://elsewhere.example/=file://"+repos+"/")
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			return string(out), code
		}
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {level: \"%d\"}\n"
		g.commit("team-a", map[string]string{"team-a/cm.yaml": fmt.Sprintf(cm, 1)})
		if out, code := run(app("team-a", "https://github.com/your-org/infra-repo.git")); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		g.commit("team-a grabs more", map[string]string{"team-a/cm.yaml": fmt.Sprintf(cm, 2),
			"team-a/role.yaml":   "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: team-a-admin}\nrules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n",
			"team-a/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n"})
		out, code := run(app("team-a", "https://github.com/your-org/infra-repo.git"))
		if code != 1 || !strings.Contains(out, "the project refuses 2 object(s), nothing was applied") ||
			!strings.Contains(out, "cluster-scoped ClusterRole.rbac.authorization.k8s.io is not allowed") || !strings.Contains(out, "Secret is not allowed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if c, _ := kube.CoreV1().ConfigMaps("team-a").Get(ctx, "settings", metav1.GetOptions{}); c.Data["level"] != "1" {
			t.Fatal("a refused sync applied the rest")
		}
		for _, c := range []struct{ yaml, want string }{
			{app("kube-system", "https://github.com/your-org/infra-repo.git"), `destination https://kubernetes.default.svc namespace "kube-system" is not in destinations`},
			{app("team-a", "https://elsewhere.example/infra-repo.git"), "repository https://elsewhere.example/infra-repo.git is not in sourceRepos"},
			{strings.Replace(app("team-a", "https://github.com/your-org/infra-repo.git"), "project: team-a", "project: team-b", 1), "AppProject team-b: no such project"},
		} {
			if out, code := run(c.yaml); code != 1 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want %q:\n%s", code, c.want, out)
			}
		}
		g.commit("team-a back", map[string]string{"team-a/role.yaml": "", "team-a/secret.yaml": ""})
	})

	t.Run("two daemons: one leads, the other takes over when it dies", func(t *testing.T) {
		start := func() (*exec.Cmd, *syncBuffer) {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			cmd := exec.Command("keyway", append(append([]string{}, base...), "--interval", "1h", "--status-addr", addr,
				"--leader-election-lease-duration", "3s", "--leader-election-renew-deadline", "2s", "--leader-election-retry-period", "500ms")...)
			logs := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return cmd, logs
		}
		a, alogs := start()
		waitFor(t, 60*time.Second, "the first daemon's sync", func() bool { return strings.Contains(alogs.String(), "msg=sync app=root-app") })
		_, blogs := start()
		time.Sleep(4 * time.Second)
		if strings.Contains(blogs.String(), "msg=sync") {
			t.Fatalf("the standby synced while the leader lives:\n%s", blogs.String())
		}
		killed := time.Now()
		_ = a.Process.Kill() // no release: the standby waits out the lease
		waitFor(t, 30*time.Second, "the standby's takeover", func() bool { return strings.Contains(blogs.String(), "msg=sync app=root-app") })
		t.Logf("takeover %s after the leader was killed (lease 3s)", time.Since(killed).Round(100*time.Millisecond))
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDaemonExample checks examples/daemon: its Application loads, and the Deployment's
// arguments are flags the daemon accepts with values it takes.
func TestDaemonExample(t *testing.T) {
	m, err := apps.Load([]string{"../../examples/daemon/root-app.yaml"})
	if err != nil || len(m.Apps) != 1 || m.Apps[0].Name != "root-app" || !m.Apps[0].Automated().SelfHeal {
		t.Fatalf("%v %+v", err, m.Apps)
	}
	raw, err := os.ReadFile("../../examples/daemon/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := sigsyaml.Unmarshal(raw, &dep); err != nil {
		t.Fatal(err)
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if args[0] != "daemon" {
		t.Fatalf("args %v", args)
	}
	cmd := newDaemonCommand(&app{})
	if err := cmd.ParseFlags(args[1:]); err != nil {
		t.Fatalf("the example's flags: %v", err)
	}
	if v, _ := cmd.Flags().GetString("state-namespace"); v != "keyway-system" {
		t.Fatalf("state-namespace %q", v)
	}
}
