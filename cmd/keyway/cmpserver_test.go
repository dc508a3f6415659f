package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/testenv"
)

// cmpServer is a real argocd-cmp-server (Argo CD v3.6.1) serving examples/argocd/plugin.yaml.
type cmpServer struct {
	socket string
	client string
	logs   func() string // what the server has written so far
	pid    int           // keyway serve's process (0 for argocd-cmp-server)
}

// startCMPServer starts argocd-cmp-server with the example plugin configuration, keyway on
// its PATH and env added to its environment (the sidecar's own settings), and waits for its
// socket.
func startCMPServer(t *testing.T, env ...string) *cmpServer {
	t.Helper()
	server, err := testenv.Binary("argocd-cmp-server")
	if err != nil {
		t.Fatal(err)
	}
	client, err := testenv.Binary("argocd-cmpclient")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config, sockets, work := filepath.Join(dir, "config"), filepath.Join(dir, "plugins"), filepath.Join(dir, "work")
	for _, d := range []string{config, sockets, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugin, err := os.ReadFile("../../examples/argocd/plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(config, "plugin.yaml"), plugin, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(server, "--config-dir-path", config, "--loglevel", "warn")
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"ARGOCD_PLUGINSOCKFILEPATH=" + sockets, "ARGOCD_CMP_WORKDIR=" + work,
	}, env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("argocd-cmp-server output:\n%s", logs.String())
		}
	})
	socket := filepath.Join(sockets, "keyway-v1.sock") // <name>-<version>.sock
	logsOf := func() string { return logs.String() }
	waitForSocket(t, socket, logs)
	return &cmpServer{socket: socket, client: client, logs: logsOf}
}

// startKeywayServe starts `keyway argocd serve` on a socket of its own, with env added to its
// environment (the sidecar's own settings).
func startKeywayServe(t *testing.T, env ...string) *cmpServer {
	t.Helper()
	return startKeywayServeArgs(t, env, nil)
}

// startKeywayServeArgs is startKeywayServe with more of generate's flags.
func startKeywayServeArgs(t *testing.T, env, generateFlags []string) *cmpServer {
	t.Helper()
	client, err := testenv.Binary("argocd-cmpclient")
	if err != nil {
		t.Fatal(err)
	}
	self, err := exec.LookPath("keyway")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "keyway-v1.sock")
	// Every request logs at debug level, to the server's output: the canary check below reads it.
	proc, logs := startServe(t, self, socket, append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...),
		append([]string{"--work-dir", dir, "--", "--log-level", "debug"}, generateFlags...)...)
	return &cmpServer{socket: socket, client: client, logs: logs.String, pid: proc.Process.Pid}
}

// startServe starts `BIN argocd serve --socket SOCKET ARGS...` with env as its environment,
// waits for its socket and stops it when tb ends; it returns the process and its output.
func startServe(tb testing.TB, bin, socket string, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"argocd", "serve", "--socket", socket}, args...)...)
	cmd.Env = env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("keyway argocd serve output:\n%s", logs.String())
		}
	})
	waitForSocket(tb, socket, logs)
	return cmd, logs
}

// waitForSocket waits until a server has created its socket, or fails with the server's
// output so far.
func waitForSocket(t testing.TB, socket string, logs fmt.Stringer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket %s after 30 s; the server wrote:\n%s", socket, logs)
		}
	}
}

// cmpReply is what argocd-cmpclient prints: the answers the repo-server would get.
type cmpReply struct {
	DiscoveryConfigured bool              `json:"discoveryConfigured"`
	Supported           bool              `json:"supported"`
	Parameters          []json.RawMessage `json:"parameters"`
	Manifests           []string          `json:"manifests"`
	GenerateError       string            `json:"generateError"`
}

// ask sends the repository's application at appPath to the server as Argo CD's repo-server
// does (a tar stream with Argo CD's environment) and returns the replies.
func (s *cmpServer) ask(t *testing.T, repo, appPath string, env map[string]string) cmpReply {
	t.Helper()
	args := []string{"-socket", s.socket, "-repo", repo, "-app", filepath.Join(repo, appPath)}
	for k, v := range env {
		args = append(args, "-env", k+"="+v)
	}
	cmd := exec.Command(s.client, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("argocd-cmpclient: %v\n%s", err, errb.String())
	}
	var r cmpReply
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("argocd-cmpclient output: %v\n%s", err, out.String())
	}
	return r
}

// objects decodes the manifests a server returns (each a YAML stream, as the repo-server
// reads them: argocd-cmp-server sends one object per string, keyway serve one stream) by
// kind/name.
func objects(t *testing.T, manifests []string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range manifests {
		docs, err := manifest.Read(strings.NewReader(m), "manifest", manifest.Limits{})
		if err != nil {
			t.Fatalf("manifest is not YAML: %v\n%s", err, m)
		}
		for _, d := range docs {
			var obj map[string]any
			if err := d.Root.Decode(&obj); err != nil {
				t.Fatal(err)
			}
			md, _ := obj["metadata"].(map[string]any)
			out[obj["kind"].(string)+"/"+md["name"].(string)] = obj
		}
	}
	return out
}

// TestRealCMPServer talks to the plugin socket with Argo CD's client code, the way the
// repo-server does — discovery, the parameters announcement, and generate for a plain app, a
// Helm chart and a Kustomize overlay; a failing render returns an error and no manifests —
// served two ways: by Argo CD's own argocd-cmp-server running examples/argocd/plugin.yaml,
// and by `keyway argocd serve`.
func TestRealCMPServer(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(secrets, []byte("secret/data/team-a/db: {password: s3cret-db}\nsecret/data/team-a/api: {token: tok-123}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, start := range map[string]func(*testing.T, ...string) *cmpServer{
		"argocd-cmp-server":   startCMPServer,
		"keyway argocd serve": startKeywayServe,
	} {
		t.Run(name, func(t *testing.T) {
			srv := start(t, "KEYWAY_SECRETS_FILE="+secrets)
			testCMP(t, srv)
			for _, canary := range []string{"s3cret-db", "tok-123"} {
				if strings.Contains(srv.logs(), canary) {
					t.Errorf("the server's log holds the secret value %q", canary)
				}
			}
		})
	}
}

func testCMP(t *testing.T, srv *cmpServer) {
	repo := copyRepo(t)
	argoEnv := func(app string) map[string]string {
		return map[string]string{
			"ARGOCD_APP_NAME": "shop-prod", "ARGOCD_APP_NAMESPACE": "shop", "ARGOCD_APP_PROJECT_NAME": "team-a",
			"ARGOCD_APP_REVISION": "0123abcd", "ARGOCD_APP_SOURCE_PATH": "apps/" + app,
			"ARGOCD_APP_SOURCE_REPO_URL": "https://git.example.com/shop.git", "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
			"KUBE_VERSION": "1.31", "KUBE_API_VERSIONS": "v1,apps/v1,monitoring.coreos.com/v1",
		}
	}

	for _, tc := range []struct {
		app   string
		check func(t *testing.T, objs map[string]map[string]any)
	}{
		{"plain", func(t *testing.T, objs map[string]map[string]any) {
			if got := field(objs["Secret/plain"], "stringData", "password"); got != "s3cret-db" {
				t.Errorf("password = %v", got)
			}
		}},
		{"chart", func(t *testing.T, objs map[string]map[string]any) {
			if got := field(objs["Secret/shop-prod-db"], "stringData", "password"); got != "s3cret-db" {
				t.Errorf("chart secret password = %v", got)
			}
			if objs["Deployment/shop-prod"] == nil {
				t.Errorf("no Deployment named after ARGOCD_APP_NAME")
			}
		}},
		{"overlay", func(t *testing.T, objs map[string]map[string]any) {
			found := false
			for _, o := range objs {
				found = found || strings.Contains(mustJSON(t, o), "tok-123")
			}
			if !found {
				t.Errorf("no substituted value in the overlay's output")
			}
		}},
	} {
		t.Run(tc.app, func(t *testing.T) {
			r := srv.ask(t, repo, "apps/"+tc.app, argoEnv(tc.app))
			if !r.DiscoveryConfigured || !r.Supported {
				t.Fatalf("discovery: configured %v, supported %v", r.DiscoveryConfigured, r.Supported)
			}
			if r.GenerateError != "" {
				t.Fatalf("generate: %s", r.GenerateError)
			}
			for _, m := range r.Manifests {
				if strings.Contains(m, "<path:") || strings.Contains(m, "ref+") {
					t.Errorf("a reference survived: %s", m)
				}
			}
			tc.check(t, objects(t, r.Manifests))
			if !strings.Contains(string(bytes.Join(rawAll(r.Parameters), nil)), "values-files") {
				t.Errorf("the parameters announcement lacks values-files: %s", bytes.Join(rawAll(r.Parameters), nil))
			}
		})
	}

	t.Run("not discovered", func(t *testing.T) {
		if r := srv.ask(t, repo, "apps/noref", argoEnv("noref")); r.Supported {
			t.Errorf("an application without references was claimed by discovery")
		}
	})

	t.Run("failure returns no manifests", func(t *testing.T) {
		r := srv.ask(t, repo, "apps/broken", argoEnv("broken"))
		if r.GenerateError == "" || len(r.Manifests) != 0 {
			t.Fatalf("a failing render gave %d manifests, error %q", len(r.Manifests), r.GenerateError)
		}
		// Argo CD shows the plugin's stderr: keyway's reason must reach it.
		if !strings.Contains(r.GenerateError, "#nokey") {
			t.Errorf("the error does not name the unresolved reference: %s", r.GenerateError)
		}
	})

	t.Run("application env cannot redirect the backend", func(t *testing.T) {
		env := argoEnv("plain")
		env["ARGOCD_ENV_KEYWAY_SECRETS_FILE"] = "/etc/passwd"
		r := srv.ask(t, repo, "apps/plain", env)
		if r.GenerateError == "" || len(r.Manifests) != 0 {
			t.Fatalf("ARGOCD_ENV_KEYWAY_SECRETS_FILE was accepted: %d manifests, error %q", len(r.Manifests), r.GenerateError)
		}
		if !strings.Contains(r.GenerateError, "KEYWAY_SECRETS_FILE") {
			t.Errorf("the error does not name the refused setting: %s", r.GenerateError)
		}
		if strings.Contains(r.GenerateError, "s3cret") || strings.Contains(r.GenerateError, "tok-123") {
			t.Errorf("the error carries a secret value: %s", r.GenerateError)
		}
	})
}

func field(obj map[string]any, path ...string) any {
	var v any = obj
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func rawAll(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}
