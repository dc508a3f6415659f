package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"rendered", []string{"render", "--secrets-file", secrets, good}, exitOK},
		{"unresolved", []string{"render", "--secrets-file", secrets, bad}, exitFailed},
		{"missing path", []string{"render", "--secrets-file", secrets, filepath.Join(dir, "nope.yaml")}, exitFailed},
		{"no args", []string{"render"}, exitUsage},
		{"unknown flag", []string{"render", "--nope", good}, exitUsage},
		{"bad backend", []string{"render", "--backend", "nope", good}, exitUsage},
		{"bad concurrency", []string{"render", "--concurrency", "0", good}, exitUsage},
		{"bad output", []string{"render", "-o", "xml", good}, exitUsage},
		{"bad env value", []string{"render", good}, exitUsage},
		{"unknown command", []string{"nope"}, exitUsage},
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
			if code != exitOK && out.Len() > 0 {
				t.Fatalf("failed run wrote to stdout:\n%s", out.String())
			}
			if strings.Contains(out.String()+errb.String(), "CANARY") && code != exitOK {
				t.Fatalf("a secret value reached the output of a failed run")
			}
		})
	}
}
