package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
)

// pluginSpec is the part of a ConfigManagementPlugin the cmp-server executes.
type pluginSpec struct {
	Spec struct {
		Discover struct {
			Find struct {
				Command []string `yaml:"command"`
			} `yaml:"find"`
		} `yaml:"discover"`
		Generate struct {
			Command []string `yaml:"command"`
		} `yaml:"generate"`
		Parameters struct {
			Dynamic struct {
				Command []string `yaml:"command"`
			} `yaml:"dynamic"`
		} `yaml:"parameters"`
	} `yaml:"spec"`
}

func loadPlugin(t *testing.T) pluginSpec {
	t.Helper()
	data, err := os.ReadFile("../../examples/argocd/plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var p pluginSpec
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Generate.Command) == 0 || len(p.Spec.Discover.Find.Command) == 0 || len(p.Spec.Parameters.Dynamic.Command) == 0 {
		t.Fatalf("plugin.yaml lacks discover, generate or dynamic parameters: %+v", p)
	}
	return p
}

// copyRepo copies the test repository to a fresh checkout, as the cmp-server does.
func copyRepo(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	copyTree(t, "testdata/argocd-repo", dst)
	return dst
}

type cmpResult struct {
	stdout, stderr string
	err            error
}

// runCmp executes a plugin command the way argocd-cmp-server does: working directory = the
// application path inside the checkout, Argo CD's environment, the command as written.
func runCmp(t *testing.T, command []string, dir string, env map[string]string) cmpResult {
	t.Helper()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return cmpResult{out.String(), errb.String(), err}
}

func params(t *testing.T, ps ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parseStream(t *testing.T, s string) map[string]*manifest.Document {
	t.Helper()
	docs, err := manifest.Read(strings.NewReader(s), "stdout", manifest.Limits{})
	if err != nil {
		t.Fatalf("generate output is not a YAML stream: %v\n%s", err, s)
	}
	out := map[string]*manifest.Document{}
	for _, d := range docs {
		out[manifest.String(d.Root, "kind")+"/"+manifest.String(d.Root, "metadata", "name")] = d
	}
	return out
}

// TestCMPContract runs examples/argocd/plugin.yaml's commands against a repository holding a
// plain app, a Helm chart and a Kustomize overlay.
func TestCMPContract(t *testing.T) {
	plugin := loadPlugin(t)
	repo := copyRepo(t)
	secrets := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(secrets, []byte(`
secret/data/team-a/db: {password: s3cret-db}
secret/data/team-a/api: {token: tok-123}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(app string, extra map[string]string) map[string]string {
		env := map[string]string{
			"KEYWAY_SECRETS_FILE":     secrets,
			"ARGOCD_APP_NAME":         "shop-prod",
			"ARGOCD_APP_NAMESPACE":    "shop",
			"ARGOCD_APP_PROJECT_NAME": "team-a",
			"ARGOCD_APP_REVISION":     "0123abcd",
			"ARGOCD_APP_SOURCE_PATH":  "apps/" + app,
			"KUBE_VERSION":            "1.31",
			"KUBE_API_VERSIONS":       "v1,apps/v1,monitoring.coreos.com/v1",
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	appDir := func(app string) string { return filepath.Join(repo, "apps", app) }

	t.Run("discover", func(t *testing.T) {
		for app, want := range map[string]string{"plain": "app.yaml", "chart": "templates/deployment.yaml", "overlay": "kustomization.yaml", "noref": ""} {
			r := runCmp(t, plugin.Spec.Discover.Find.Command, appDir(app), base(app, nil))
			if r.err != nil || strings.TrimSpace(r.stdout) != want {
				t.Errorf("discover %s = %q, %v; want %q", app, r.stdout, r.err, want)
			}
		}
	})

	t.Run("plain", func(t *testing.T) {
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), base("plain", nil))
		if r.err != nil {
			t.Fatalf("generate: %v\n%s", r.err, r.stderr)
		}
		docs := parseStream(t, r.stdout)
		if got := manifest.String(docs["Secret/plain"].Root, "stringData", "password"); got != "s3cret-db" {
			t.Fatalf("password = %q", got)
		}
	})

	t.Run("helm", func(t *testing.T) {
		env := base("chart", map[string]string{"ARGOCD_APP_PARAMETERS": params(t,
			map[string]any{"name": "values-files", "array": []string{"values-prod.yaml"}},
			map[string]any{"name": "set", "map": map[string]string{"image": "shop:2.0"}},
		)})
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("chart"), env)
		if r.err != nil {
			t.Fatalf("generate: %v\n%s", r.err, r.stderr)
		}
		docs := parseStream(t, r.stdout)
		dep := docs["Deployment/shop-prod"]
		if dep == nil {
			t.Fatalf("no Deployment named after ARGOCD_APP_NAME in:\n%s", r.stdout)
		}
		container := manifest.Get(dep.Root, "spec", "template", "spec", "containers").Content[0]
		checks := map[string][2]string{
			"namespace from ARGOCD_APP_NAMESPACE": {manifest.String(dep.Root, "metadata", "namespace"), "shop"},
			"replicas from values-prod.yaml":      {manifest.String(dep.Root, "spec", "replicas"), "3"},
			"image from set":                      {manifest.String(container, "image"), "shop:2.0"},
			"placeholder in a template":           {manifest.String(manifest.Get(container, "env").Content[0], "value"), "tok-123"},
			"placeholder in values":               {manifest.String(docs["Secret/shop-prod-db"].Root, "stringData", "password"), "s3cret-db"},
		}
		for name, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s: got %q, want %q", name, c[0], c[1])
			}
		}
		if docs["ServiceMonitor/shop-prod"] == nil {
			t.Errorf("KUBE_API_VERSIONS did not reach Helm's Capabilities")
		}
	})

	t.Run("kustomize", func(t *testing.T) {
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("overlay"), base("overlay", nil))
		if r.err != nil {
			t.Fatalf("generate: %v\n%s", r.err, r.stderr)
		}
		s := parseStream(t, r.stdout)["Secret/prod-base"]
		if s == nil || manifest.String(s.Root, "stringData", "token") != "tok-123" || manifest.String(s.Root, "stringData", "extra") != "hello-from-the-repo" {
			t.Fatalf("overlay output:\n%s", r.stdout)
		}
	})

	t.Run("failure gives no output", func(t *testing.T) {
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("broken"), base("broken", nil))
		if r.err == nil || r.stdout != "" {
			t.Fatalf("err = %v, stdout = %q; want a failure with empty stdout", r.err, r.stdout)
		}
		if !strings.Contains(r.stderr, `data.k: <path:secret/data/team-a/db#nokey>: key missing`) {
			t.Fatalf("stderr does not name the reference:\n%s", r.stderr)
		}
	})

	t.Run("closed by default", func(t *testing.T) {
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), base("plain", map[string]string{"ARGOCD_ENV_VAULT_ADDR": "https://attacker.example"}))
		if r.err == nil || r.stdout != "" || !strings.Contains(r.stderr, "ARGOCD_ENV_VAULT_ADDR: the application may not set VAULT_ADDR") {
			t.Fatalf("err = %v, stdout = %q, stderr = %q; want the override refused", r.err, r.stdout, r.stderr)
		}
		r = runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), base("plain", map[string]string{"ARGOCD_ENV_KEYWAY_SECRETS_FILE": "/etc/passwd"}))
		if r.err == nil || !strings.Contains(r.stderr, "may not set KEYWAY_SECRETS_FILE") {
			t.Fatalf("stderr = %q; want KEYWAY_SECRETS_FILE refused", r.stderr)
		}
		// The operator may allow a setting; unrelated ARGOCD_ENV_ entries are ignored.
		r = runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), base("plain", map[string]string{
			"ARGOCD_ENV_VAULT_NAMESPACE": "team-a", "KEYWAY_ARGOCD_ALLOW_ENV": "VAULT_NAMESPACE", "ARGOCD_ENV_FEATURE": "x",
		}))
		if r.err != nil {
			t.Fatalf("allowed override failed: %v\n%s", r.err, r.stderr)
		}
	})

	t.Run("project path policy", func(t *testing.T) {
		env := base("plain", map[string]string{"ARGOCD_APP_PROJECT_NAME": "team-b", "KEYWAY_ARGOCD_PROJECT_PATH": "team-a=secret/data/team-a/,team-b=secret/data/team-b/"})
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), env)
		if r.err == nil || r.stdout != "" || !strings.Contains(r.stderr, `file:secret/data/team-a/db is outside the paths Argo CD project "team-b" may read`) {
			t.Fatalf("err = %v, stderr = %q; want the reference refused for team-b", r.err, r.stderr)
		}
		env["ARGOCD_APP_PROJECT_NAME"] = "team-a"
		if r := runCmp(t, plugin.Spec.Generate.Command, appDir("plain"), env); r.err != nil {
			t.Fatalf("team-a: %v\n%s", r.err, r.stderr)
		}
	})

	t.Run("values files stay in the repository", func(t *testing.T) {
		outside := filepath.Join(filepath.Dir(repo), "outside.yaml")
		if err := os.WriteFile(outside, []byte("replicas: 9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := base("chart", map[string]string{"ARGOCD_APP_PARAMETERS": params(t, map[string]any{"name": "values-files", "array": []string{"../../../outside.yaml"}})})
		r := runCmp(t, plugin.Spec.Generate.Command, appDir("chart"), env)
		if r.err == nil || r.stdout != "" || !strings.Contains(r.stderr, `values file "../../../outside.yaml": is outside the repository`) {
			t.Fatalf("err = %v, stderr = %q; want the traversal refused", r.err, r.stderr)
		}
		env["ARGOCD_APP_PARAMETERS"] = params(t, map[string]any{"name": "helm-args", "string": "--post-renderer /bin/sh"})
		r = runCmp(t, plugin.Spec.Generate.Command, appDir("chart"), env)
		if r.err == nil || !strings.Contains(r.stderr, `unknown plugin parameter "helm-args"`) {
			t.Fatalf("stderr = %q; want free-form Helm flags refused", r.stderr)
		}
	})

	t.Run("dynamic parameters", func(t *testing.T) {
		r := runCmp(t, plugin.Spec.Parameters.Dynamic.Command, appDir("chart"), base("chart", nil))
		var ann []map[string]any
		if r.err != nil || json.Unmarshal([]byte(r.stdout), &ann) != nil || len(ann) == 0 {
			t.Fatalf("parameters = %q, %v", r.stdout, r.err)
		}
		if files := ann[0]["array"].([]any); len(files) != 2 {
			t.Fatalf("values-files announced %v, want values-prod.yaml and values.yaml", files)
		}
	})
}
