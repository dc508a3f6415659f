package render_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/plugins/render"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/file"
)

// vector is one testdata/vectors/*.txtar file: an "expect: success|error" header, the
// input manifest, the file backend's secrets, and the expected output or error lines.
type vector struct {
	expectErr bool
	files     map[string][]byte
}

func loadVector(t testing.TB, path string) vector {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := vector{files: map[string][]byte{}}
	header := strings.SplitN(string(ar.Comment), "\n", 2)[0]
	switch strings.TrimSpace(header) {
	case "expect: success":
	case "expect: error":
		v.expectErr = true
	default:
		t.Fatalf("%s: first line must be 'expect: success' or 'expect: error', got %q", path, header)
	}
	for _, f := range ar.Files {
		v.files[f.Name] = f.Data
	}
	return v
}

// renderVector lays the vector out on disk (secrets.yaml beside, not inside, the render root)
// and renders input.yaml through the real file provider.
func renderVector(t testing.TB, v vector) (string, error) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for name, data := range v.files {
		p := filepath.Join(root, name)
		if name == "secrets.yaml" {
			p = filepath.Join(dir, name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := render.Load(t.Context(), []string{filepath.Join(root, "input.yaml")}, nil, manifest.Limits{}, nil)
	if err != nil {
		return "", err
	}
	clients := providers.NewClients(providers.NewRegistry(file.Provider{}), map[string]providers.Settings{
		"file": {file.SettingSecretsFile: filepath.Join(dir, "secrets.yaml")},
	}, nil)
	defer clients.Close()
	if _, err := render.New(clients, render.Options{DefaultBackend: "file"}).Render(t.Context(), docs); err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := manifest.Encode(&out, docs, manifest.YAML); err != nil {
		return "", err
	}
	return out.String(), nil
}

func TestVectors(t *testing.T) {
	paths, err := filepath.Glob("testdata/vectors/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			t.Parallel()
			v := loadVector(t, path)
			out, err := renderVector(t, v)
			if !v.expectErr {
				if err != nil {
					t.Fatalf("render: %v", err)
				}
				if want := string(v.files["expect.yaml"]); out != want {
					t.Fatalf("output differs\n--- got\n%s\n--- want\n%s", out, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("render succeeded, want an error; output:\n%s", out)
			}
			msg := err.Error()
			for line := range strings.SplitSeq(strings.TrimSpace(string(v.files["expect.err"])), "\n") {
				if !strings.Contains(msg, line) {
					t.Errorf("error lacks %q\nerror:\n%s", line, msg)
				}
			}
			for _, canary := range secretValues(t, v.files["secrets.yaml"]) {
				if strings.Contains(msg, canary) {
					t.Errorf("error leaks the secret value %q:\n%s", canary, msg)
				}
			}
		})
	}
}

// secretValues lists every string value of a secrets file, for leak checks.
func secretValues(t testing.TB, data []byte) []string {
	t.Helper()
	var m map[string]map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, keys := range m {
		for _, v := range keys {
			if s, ok := v.(string); ok && len(s) >= 4 {
				out = append(out, s)
			}
		}
	}
	return out
}
