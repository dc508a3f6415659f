package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyway-dev/keyway/sealing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secrets := write("s.yaml", "secret/a:\n  k: CANARY-exit\n")
	good := write("good.yaml", "kind: A\nv: <path:secret/a#k>\n")
	bad := write("bad.yaml", "kind: A\nv: <path:secret/a#missing>\n")
	secret := write("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\nstringData: {a: CANARY-seal}\n")
	_, weak, err := sealing.GenerateKey(rand.Reader, 1024, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	weakCert := write("weak.pem", string(weak))
	chart := filepath.Join(dir, "chart")
	if err := os.MkdirAll(filepath.Join(chart, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // a part of the message, when it matters
	}{
		{"rendered", []string{"render", "--secrets-file", secrets, good}, exitOK, ""},
		{"unresolved", []string{"render", "--secrets-file", secrets, bad}, exitFailed, ""},
		{"missing path", []string{"render", "--secrets-file", secrets, filepath.Join(dir, "nope.yaml")}, exitFailed, ""},
		{"no args", []string{"render"}, exitUsage, ""},
		{"unknown flag", []string{"render", "--nope", good}, exitUsage, ""},
		{"bad backend", []string{"render", "--backend", "nope", good}, exitUsage, ""},
		{"bad concurrency", []string{"render", "--concurrency", "0", good}, exitUsage, ""},
		{"bad output", []string{"render", "-o", "xml", good}, exitUsage, ""},
		{"bad env value", []string{"render", good}, exitUsage, ""},
		{"unknown command", []string{"nope"}, exitUsage, ""},
		{"bad source", []string{"render", "--source", "bogus", good}, exitUsage, ""},
		{"bad kube version", []string{"render", "--kube-version", "notaversion", chart}, exitUsage, ""},
		{"bad release name", []string{"render", "--release-name", "Not_A_Release!", chart}, exitUsage, ""},
		{"negative limit", []string{"render", "--max-input-bytes", "-1", good}, exitUsage, ""},
		{"zero document limit", []string{"render", "--max-document-bytes", "0", good}, exitUsage, ""},
		{"cert over http", []string{"seal", "--cert", "http://127.0.0.1:9/v1/cert.pem", "-f", secret}, exitUsage, ""},
		{"1024-bit cert", []string{"seal", "--cert", weakCert, "-f", secret}, exitFailed, "1024-bit RSA key"},
		// Settings are checked when the command starts, used by a reference or not.
		{"vault setting typo", []string{"render", "--secrets-file", secrets, "--vault-setting", "max-inflight=4", good}, exitUsage,
			`backend "vault" setting "max-inflight": unknown setting (did you mean "max-in-flight"?)`},
		{"aws setting typo", []string{"render", "--secrets-file", secrets, "--setting", "awssm.regoin=x", good}, exitUsage,
			`backend "awssm" setting "regoin": unknown setting (did you mean "region"?)`},
		{"backend typo", []string{"render", "--secrets-file", secrets, "--setting", "vualt.address=x", good}, exitUsage, `did you mean "vault"?`},
		{"bad vault value", []string{"render", "--secrets-file", secrets, "--vault-setting", "request-timeout=soon", good}, exitUsage,
			`setting "request-timeout": "soon" is not a positive duration`},
		{"vault setting through --setting", []string{"render", "--secrets-file", secrets, "--setting", "vault.max-in-flight=4", good}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := func(k string) (string, bool) {
				if tt.name == "bad env value" && k == "KEYWAY_CONCURRENCY" {
					return "many", true
				}
				return "", false
			}
			code := run(t.Context(), tt.args, streams{in: strings.NewReader(""), out: &out, err: &errb}, env)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tt.stderr, errb.String())
			}
			if code != exitOK && out.Len() > 0 {
				t.Fatalf("failed run wrote to stdout:\n%s", out.String())
			}
			if strings.Contains(out.String()+errb.String(), "CANARY") && code != exitOK {
				t.Fatalf("a secret value reached the output of a failed run")
			}
		})
	}
}
