package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDaemonNeverSilentlyWrong: what Argo CD would do differently is refused, naming the
// field, before anything is applied — a .jsonnet file in a directory source, another
// plugin's name, kustomize overrides, a sync option keyway does not implement, a negated
// project pattern, sync windows — and what it implements now behaves as Argo CD: an
// application's own Prune=false, Helm hook weights as waves, managed namespace metadata
// kept in sync, and a cascade delete that keeps Delete=false, helm.sh/resource-policy: keep
// and CRDs. (Issue 25, items 1–6, 9 and 10; item 8, ignoreDifferences globs, is
// TestIgnoreRuleMatches.)
func TestDaemonNeverSilentlyWrong(t *testing.T) {
	ctx := t.Context()
	env, kube := daemonCluster(t)
	work := t.TempDir()
	g := newGitRepo(t, filepath.Join(work, "git", "apps.git"))
	cm := func(name, annotations string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", annotations: {" + annotations + "}}\ndata: {k: v}\n"
	}
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
`
	files := map[string]string{
		"jsonnet/cm.yaml":           cm("plain", ""),
		"jsonnet/app.jsonnet":       `{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "from-jsonnet" } }`,
		"plain/cm.yaml":             cm("plain", ""),
		"noprune/a.yaml":            cm("a", ""),
		"noprune/b.yaml":            cm("b", ""),
		"weights/deploy.yaml":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: first, annotations: {helm.sh/hook-weight: \"-5\"}}\nspec:\n  selector: {matchLabels: {app: first}}\n  template:\n    metadata: {labels: {app: first}}\n    spec: {containers: [{name: c, image: never:1}]}\n",
		"weights/cm.yaml":           cm("after", `helm.sh/hook-weight: "5"`),
		"caps/Chart.yaml":           "apiVersion: v2\nname: caps\nversion: 0.1.0\n",
		"caps/values-helmcaps.yaml": "fromFile: chosen-by-app-name\n",
		"caps/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: caps}
data:
  deployments: "{{ .Capabilities.APIVersions.Has "apps/v1/Deployment" }}"
  widgets: "{{ .Capabilities.APIVersions.Has "example.com/v1" }}"
  kube: "{{ .Capabilities.KubeVersion.Version }}"
  app: "{{ .Values.app }}"
  rev: "{{ .Values.rev }}"
  fromFile: "{{ .Values.fromFile }}"
  literal: "{{ .Values.literal }}"
`,
		"tree/cm.yaml":           cm("tree", ""),
		"child/gone.yaml":        cm("gone", ""),
		"child/kept-delete.yaml": cm("kept-delete", `argocd.argoproj.io/sync-options: Delete=false`),
		"child/kept-helm.yaml":   cm("kept-helm", `helm.sh/resource-policy: keep`),
		"child/crd.yaml":         crd,
	}
	files["tree/child.yaml"] = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: child, finalizers: [resources-finalizer.argocd.argoproj.io]}
spec:
  project: default
  source: {repoURL: https://git.example/apps.git, targetRevision: main, path: child}
  destination: {server: https://kubernetes.default.svc, namespace: child}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`
	g.commit("apps", files)
	app := func(name, path, extra string) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: %s%s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, name, g.dir, path, extra, name)
	}
	once := func(appYAML string, extra ...string) (string, int) {
		t.Helper()
		f := filepath.Join(work, "app.yaml")
		if err := os.WriteFile(f, []byte(appYAML), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"daemon", "--once", "--kubeconfig", env.Kubeconfig, "--app", f, "--cache-dir", filepath.Join(work, "cache"), "--wave-timeout", "3s"}, extra...)
		cmd := exec.CommandContext(ctx, "keyway", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	exists := func(ns, name string) bool {
		_, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	}

	t.Run("refused, naming the field, with nothing applied", func(t *testing.T) {
		for _, tc := range []struct {
			name, manifest, want string
		}{
			{"plugin", app("plugin", "plain", ", plugin: {name: argocd-vault-plugin}"), "spec.source.plugin.name is not supported"},
			{"kustomize", app("kustomize", "plain", ", kustomize: {namePrefix: p-}"), "spec.source.kustomize.namePrefix is not supported"},
			{"skipdryrun", strings.Replace(app("skipdryrun", "plain", ""), "CreateNamespace=true", "CreateNamespace=true, SkipDryRunOnMissingResource=true", 1), "sync option SkipDryRunOnMissingResource=true is not supported"},
			{"typo", strings.Replace(app("typo", "plain", ""), "targetRevision", "targetRevison", 1), "spec.source.targetRevison is not a field"},
			{"negated", "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec: {sourceRepos: ['*', '!https://evil.example/*'], destinations: [{server: '*', namespace: '*'}]}\n---\n" +
				strings.Replace(app("negated", "plain", ""), "project: default", "project: p", 1), "negated patterns are not supported"},
			{"windows", "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: w}\nspec: {sourceRepos: ['*'], destinations: [{server: '*', namespace: '*'}], syncWindows: [{kind: deny, schedule: '* * * * *', duration: 24h}]}\n---\n" +
				strings.Replace(app("windows", "plain", ""), "project: default", "project: w", 1), "spec.syncWindows is not supported"},
		} {
			out, code := once(tc.manifest)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("%s: exit %d, want the refusal %q:\n%s", tc.name, code, tc.want, out)
			}
			if exists(tc.name, "plain") {
				t.Errorf("%s: applied although refused", tc.name)
			}
		}
		out, code := once(app("jsonnet", "jsonnet", ""))
		if code == 0 || !strings.Contains(out, "app.jsonnet: jsonnet is not supported") || exists("jsonnet", "plain") {
			t.Errorf("a directory with a .jsonnet file: exit %d:\n%s", code, out)
		}
	})

	t.Run("an application's own Prune=false", func(t *testing.T) {
		manifest := strings.Replace(app("noprune", "noprune", ""), "CreateNamespace=true", "CreateNamespace=true, Prune=false", 1)
		if out, code := once(manifest); code != 0 || !exists("noprune", "b") {
			t.Fatalf("first sync: exit %d\n%s", code, out)
		}
		files["noprune/b.yaml"] = ""
		g.commit("b leaves", files)
		delete(files, "noprune/b.yaml")
		out, _ := once(manifest)
		if !exists("noprune", "b") {
			t.Fatalf("pruned despite the application's Prune=false:\n%s", out)
		}
		if !strings.Contains(out, "OutOfSync") {
			t.Fatalf("the application does not say OutOfSync:\n%s", out)
		}
	})

	t.Run("helm.sh/hook-weight orders waves", func(t *testing.T) {
		out, code := once(app("weights", "weights", ""))
		if code == 0 || !strings.Contains(out, "wave -5 did not become healthy") {
			t.Fatalf("exit %d, want wave -5 to time out:\n%s", code, out)
		}
		if exists("weights", "after") {
			t.Fatal("the weight-5 ConfigMap was applied before the weight -5 Deployment was healthy")
		}
	})

	t.Run("managed namespace metadata kept in sync", func(t *testing.T) {
		meta := func(labels string) string {
			return strings.Replace(app("nsmeta", "plain", ""), "  syncPolicy:\n", "  syncPolicy:\n    managedNamespaceMetadata: {labels: {"+labels+"}}\n", 1)
		}
		label := func(k string) (string, bool) {
			ns, err := kube.CoreV1().Namespaces().Get(ctx, "nsmeta", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			v, ok := ns.Labels[k]
			return v, ok
		}
		for _, step := range []struct {
			labels, key, want string
			present           bool
		}{
			{"team: a", "team", "a", true},
			{"team: b", "team", "b", true},
			{"owner: x", "team", "", false},
		} {
			if out, code := once(meta(step.labels)); code != 0 {
				t.Fatalf("%s: exit %d\n%s", step.labels, code, out)
			}
			if v, ok := label(step.key); ok != step.present || v != step.want {
				t.Fatalf("after {%s}: label %s = %q (%v)", step.labels, step.key, v, ok)
			}
		}
		if v, _ := label("owner"); v != "x" {
			t.Fatalf("owner label %q", v)
		}
	})

	t.Run("a deleted resource without selfHeal: OutOfSync and Missing", func(t *testing.T) {
		f := filepath.Join(work, "missing.yaml")
		if err := os.WriteFile(f, []byte(app("missing", "plain", "")), 0o644); err != nil {
			t.Fatal(err)
		}
		addr, _ := startDaemon(t, "--kubeconfig", env.Kubeconfig, "--app", f, "--cache-dir", filepath.Join(work, "cache-missing"), "--interval", "1s")
		waitFor(t, 60*time.Second, "the first sync", func() bool { return exists("missing", "plain") })
		waitFor(t, 10*time.Second, "Synced and Healthy", func() bool {
			st := appStatus(t, addr, "missing")
			return st["sync"] == "Synced" && st["health"] == "Healthy"
		})
		if err := kube.CoreV1().ConfigMaps("missing").Delete(ctx, "plain", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "OutOfSync and Missing, as Argo CD shows it", func() bool {
			st := appStatus(t, addr, "missing")
			return st["sync"] == "OutOfSync" && st["health"] == "Missing"
		})
		if exists("missing", "plain") {
			t.Fatal("recreated without selfHeal")
		}
	})

	t.Run("a cascade delete keeps Delete=false, resource-policy keep and CRDs", func(t *testing.T) {
		// A child may name its root's repository (not a local path): both go through a rewrite.
		tree := strings.Replace(app("tree", "tree", ""), g.dir, "https://git.example/apps.git", 1)
		rewrite := []string{"--git-rewrite", "https://git.example/=file://" + filepath.Dir(g.dir) + "/"}
		if out, code := once(tree, rewrite...); code != 0 || !exists("child", "gone") {
			t.Fatalf("first sync: exit %d\n%s", code, out)
		}
		files["tree/child.yaml"] = ""
		g.commit("the child leaves", files)
		if out, code := once(tree, rewrite...); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if exists("child", "gone") {
			t.Fatal("the child's plain ConfigMap was kept")
		}
		for _, name := range []string{"kept-delete", "kept-helm"} {
			if !exists("child", name) {
				t.Errorf("%s deleted with its application", name)
			}
		}
		raw, err := kube.Discovery().RESTClient().Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com").DoRaw(ctx)
		if err != nil || strings.Contains(string(raw), `"deletionTimestamp"`) {
			t.Errorf("the CRD was deleted with its application: %v", err)
		}
	})

	t.Run("Helm sees the destination's Capabilities and Argo CD's build environment", func(t *testing.T) {
		// After the cascade subtest, the cluster serves example.com/v1 (its CRD was kept).
		manifest := app("helmcaps", "caps", `, helm: {valueFiles: [values-$ARGOCD_APP_NAME.yaml], parameters: [{name: app, value: $ARGOCD_APP_NAME}, {name: rev, value: "${ARGOCD_APP_REVISION_SHORT}"}, {name: literal, value: "$$HOME"}]}`)
		if out, code := once(manifest); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		cm, err := kube.CoreV1().ConfigMaps("helmcaps").Get(ctx, "caps", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		head := strings.TrimSpace(g.git("rev-parse", "HEAD"))
		want := map[string]string{"deployments": "true", "widgets": "true", "app": "helmcaps", "rev": head[:7], "fromFile": "chosen-by-app-name", "literal": "$HOME"}
		for k, v := range want {
			if cm.Data[k] != v {
				t.Errorf("%s = %q, want %q", k, cm.Data[k], v)
			}
		}
		sv, err := kube.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if prefix := "v" + sv.Major + "." + strings.TrimSuffix(sv.Minor, "+") + "."; !strings.HasPrefix(cm.Data["kube"], prefix) {
			t.Errorf("Helm saw Kubernetes %s, the cluster is %s.x (Helm's default is v1.20.0)", cm.Data["kube"], prefix)
		}
	})
}
