package argocd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindReference(t *testing.T) {
	write := func(dir, name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	write(outside, "leak.yaml", "v: <path:secret/data/x#k>\n")
	for name, tc := range map[string]struct {
		files map[string]string
		link  string // a link to outside/leak.yaml, by this name
		want  string
	}{
		"placeholder":      {files: map[string]string{"a.txt": "<path:x#y>", "app/cm.yaml": "v: <path:secret/data/a#k>\n"}, want: "app/cm.yaml"},
		"uri reference":    {files: map[string]string{"v.json": `{"v": "ref+vault://secret/a#/k"}`}, want: "v.json"},
		"annotation":       {files: map[string]string{"templates/s.tpl": "avp.kubernetes.io/path: secret/data/a\n"}, want: "templates/s.tpl"},
		"hidden directory": {files: map[string]string{".git/x.yaml": "<path:secret/data/a#k>", "ok.yaml": "v: 1\n"}, want: ""},
		"nothing":          {files: map[string]string{"a.yaml": "kind: ConfigMap\n"}, want: ""},
		"link out":         {files: map[string]string{"a.yaml": "kind: ConfigMap\n"}, link: "leak.yaml", want: ""},
		"too large":        {files: map[string]string{"big.yaml": strings.Repeat("#", discoverMaxBytes) + "\n<path:secret/data/a#k>"}, want: ""},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for n, d := range tc.files {
				write(dir, n, d)
			}
			if tc.link != "" {
				if err := os.Symlink(filepath.Join(outside, "leak.yaml"), filepath.Join(dir, tc.link)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FindReference(dir)
			if err != nil || got != tc.want {
				t.Fatalf("FindReference = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if as := Parameters(t.TempDir()); len(as) != 6 || as[0].Name != "values-files" {
		t.Fatalf("Parameters = %+v", as)
	}
}
