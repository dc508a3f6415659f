package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyway-dev/keyway/internal/testenv"
)

func writeSecrets(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(p, []byte("secret/data/team-a/db: {password: s3cret-db}\nsecret/data/team-a/api: {token: tok-123}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runTool(t *testing.T, bin string, env []string, dir string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestHelmPostRenderer drives the real helm CLI with keyway as its post-renderer.
func TestHelmPostRenderer(t *testing.T) {
	helm, err := testenv.Binary("helm")
	if err != nil {
		t.Fatal(err)
	}
	chart, _ := filepath.Abs("testdata/argocd-repo/apps/chart")
	env := []string{"KEYWAY_SECRETS_FILE=" + writeSecrets(t)}
	out, stderr, err := runTool(t, helm, env, t.TempDir(), "template", "shop", chart,
		"--post-renderer", "keyway", "--post-renderer-args", "render", "--post-renderer-args", "-")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	for _, want := range []string{"password: s3cret-db", "value: tok-123"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "<path:") {
		t.Errorf("a placeholder survived:\n%s", out)
	}
	// A failed substitution fails helm, with keyway's message.
	out, stderr, err = runTool(t, helm, []string{"KEYWAY_SECRETS_FILE=" + filepath.Join(t.TempDir(), "missing.yaml")}, t.TempDir(), "template", "shop", chart,
		"--post-renderer", "keyway", "--post-renderer-args", "render", "--post-renderer-args", "-")
	if err == nil || strings.Contains(out, "kind:") {
		t.Fatalf("helm succeeded with a failing post-renderer: %v\n%s", err, out)
	}
	if !strings.Contains(stderr, "does not exist") {
		t.Fatalf("stderr lacks keyway's reason:\n%s", stderr)
	}
}

// TestKRMFunction runs keyway as an exec KRM function from the real kustomize CLI.
func TestKRMFunction(t *testing.T) {
	kustomize, err := testenv.Binary("kustomize")
	if err != nil {
		t.Fatal(err)
	}
	self, err := exec.LookPath("keyway")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(writeSecrets(t)) // the function runs in the kustomization's directory
	files := map[string]string{
		"kustomization.yaml": "resources:\n- secret.yaml\ntransformers:\n- keyway.yaml\n",
		"secret.yaml":        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: <path:secret/data/team-a/db#password>\n  token: <path:secret/data/team-a/api#token | base64encode>\n",
		"keyway.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: keyway
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ` + self + `
        args: [krm]
data:
  secrets-file: secrets.yaml
`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := runTool(t, kustomize, nil, dir, "build", "--enable-alpha-plugins", "--enable-exec", ".")
	if err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "password: s3cret-db") || !strings.Contains(out, "token: dG9rLTEyMw==") {
		t.Fatalf("kustomize output:\n%s", out)
	}
	// An unresolved reference fails the build; the item is not half-substituted.
	bad := strings.Replace(files["secret.yaml"], "#password>", "#nokey>", 1)
	if err := os.WriteFile(filepath.Join(dir, "secret.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = runTool(t, kustomize, nil, dir, "build", "--enable-alpha-plugins", "--enable-exec", ".")
	if err == nil || strings.Contains(out, "tok-123") || strings.Contains(out, "dG9rLTEyMw==") {
		t.Fatalf("kustomize build succeeded or leaked a value: %v\n%s", err, out)
	}
	if !strings.Contains(stderr, `stringData.password: <path:secret/data/team-a/db#nokey>: key missing`) {
		t.Fatalf("stderr lacks the problem:\n%s", stderr)
	}
}
