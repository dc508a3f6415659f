package file_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/file"
	"github.com/keyway-dev/keyway/providers/providertest"
)

func writeSecrets(t *testing.T, secrets map[string]map[string]string, versions map[string]map[string]map[string]string) []byte {
	t.Helper()
	all := map[string]map[string]string{}
	for p, kv := range secrets {
		all[p] = kv
	}
	for p, vs := range versions {
		for v, kv := range vs {
			all[p+"@"+v] = kv
		}
	}
	data, err := yaml.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func seeded() providertest.Seeded {
	return providertest.Seeded{
		Ref:     func(p string) providers.Ref { return providers.Ref{Backend: "file", Path: p} },
		Version: func(p, v string) providers.Ref { return providers.Ref{Backend: "file", Path: p, Version: v} },
	}
}

func TestConformancePlain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.yaml")
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, s map[string]map[string]string, v map[string]map[string]map[string]string) providertest.Seeded {
			if err := os.WriteFile(path, writeSecrets(t, s, v), 0o600); err != nil {
				t.Fatal(err)
			}
			return seeded()
		},
		Open: func(t *testing.T) providers.Client {
			c, err := file.Provider{}.Open(t.Context(), providers.Config{Settings: providers.Settings{file.SettingSecretsFile: path}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	})
}

func TestConformanceAgeEncrypted(t *testing.T) {
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idPath := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idPath, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "secrets.enc.yaml")
	providertest.Run(t, providertest.Fixture{
		Seed: func(t *testing.T, s map[string]map[string]string, v map[string]map[string]map[string]string) providertest.Seeded {
			if err := os.WriteFile(path, encrypt(t, writeSecrets(t, s, v), id.Recipient(), true), 0o600); err != nil {
				t.Fatal(err)
			}
			return seeded()
		},
		Open: func(t *testing.T) providers.Client {
			c, err := file.Provider{}.Open(t.Context(), providers.Config{Settings: providers.Settings{file.SettingSecretsFile: path, file.SettingAgeIdentity: idPath}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	})
}

func encrypt(t *testing.T, plain []byte, r age.Recipient, armored bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var aw io.Closer
	if armored {
		a := armor.NewWriter(&buf)
		w, aw = a, a
	}
	enc, err := age.Encrypt(w, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const canary = "CANARY-open-9"
	plain := []byte("secret/a:\n  k: " + canary + "\n")
	binary := write("bin.age", encrypt(t, plain, id.Recipient(), false))
	idFile := write("id.txt", []byte(id.String()+"\n"))
	otherFile := write("other.txt", []byte(other.String()+"\n"))
	badID := write("bad-id.txt", []byte("AGE-SECRET-KEY-1"+canary+"\n"))
	notMap := write("list.yaml", []byte("- "+canary+"\n"))
	entryNotMap := write("entry.yaml", []byte("secret/a: "+canary+"\n"))
	badYAML := write("bad.yaml", []byte("a: [\""+canary+"\n"))
	jsonFile := write("s.json", []byte(`{"secret/a": {"k": "`+canary+`", "emoji": "\ud83d\ude00", "n": 12345678901234, "f": 1.5}}`))
	badJSON := write("bad.json", []byte("{\"secret/a\": {\"k\": \"x\"},\n \"b\": "+canary+"}"))
	dupJSON := write("dup.json", []byte(`{"secret/a": {"k": "`+canary+`", "k": "x"}}`))
	trailingJSON := write("trailing.json", []byte(`{"secret/a": {"k": "x"}} {"`+canary+`": 1}`))

	tests := []struct {
		name     string
		settings providers.Settings
		wantErr  string
		is       error
	}{
		{"binary age file decrypts", providers.Settings{file.SettingSecretsFile: binary, file.SettingAgeIdentity: idFile}, "", nil},
		{"encrypted without identity", providers.Settings{file.SettingSecretsFile: binary}, "is age-encrypted: pass --age-identity", nil},
		{"wrong identity", providers.Settings{file.SettingSecretsFile: binary, file.SettingAgeIdentity: otherFile}, "none of the age identities can decrypt it", providers.ErrPermissionDenied},
		{"malformed identity", providers.Settings{file.SettingSecretsFile: binary, file.SettingAgeIdentity: badID}, "malformed identity", nil},
		{"missing file", providers.Settings{file.SettingSecretsFile: filepath.Join(dir, "nope.yaml")}, "does not exist", providers.ErrNotFound},
		{"top level not a mapping", providers.Settings{file.SettingSecretsFile: notMap}, "top level must be a mapping", nil},
		{"entry not a mapping", providers.Settings{file.SettingSecretsFile: entryNotMap}, `entry "secret/a" must be a mapping of keys`, nil},
		{"bad yaml", providers.Settings{file.SettingSecretsFile: badYAML}, "invalid YAML", nil},
		{"json with surrogate pairs", providers.Settings{file.SettingSecretsFile: jsonFile}, "", nil},
		{"bad json", providers.Settings{file.SettingSecretsFile: badJSON}, "line 2, column 7: invalid JSON", nil},
		{"duplicate json key", providers.Settings{file.SettingSecretsFile: dupJSON}, `line 1, column 37: invalid JSON: key "k" appears twice`, nil},
		{"content after json", providers.Settings{file.SettingSecretsFile: trailingJSON}, "content after the top-level object", nil},
		{"unknown setting", providers.Settings{"adress": "x"}, `setting "adress": unknown setting (known: age-identity, secrets-file)`, nil},
		{"directory", providers.Settings{file.SettingSecretsFile: dir}, "not a regular file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := file.Provider{}.Open(t.Context(), providers.Config{Settings: tt.settings})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s, err := c.Fetch(t.Context(), providers.Ref{Backend: "file", Path: "secret/a"})
				if err != nil || s.Data["k"] != canary {
					t.Fatalf("Fetch = %v, %v; want the decrypted value", s.Data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.is)
			}
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("error leaks file content: %v", err)
			}
		})
	}
}

// TestJSONValues: a JSON secrets file decodes to the values a YAML file of the same content
// gives, and characters beyond the BMP written as surrogate-pair escapes arrive whole.
func TestJSONValues(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(p, []byte(`{"secret/a": {"emoji": "a\ud83d\ude00b", "n": 12345678901234, "f": 1.5, "b": true, "l": ["x", 2], "z": null}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := file.Provider{}.Open(t.Context(), providers.Config{Settings: providers.Settings{file.SettingSecretsFile: p}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Fetch(t.Context(), providers.Ref{Backend: "file", Path: "secret/a"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"emoji": "a😀b", "n": 12345678901234, "f": 1.5, "b": true, "l": []any{"x", 2}, "z": nil}
	if fmt.Sprint(s.Data) != fmt.Sprint(want) {
		t.Fatalf("data = %#v\nwant %#v", s.Data, want)
	}
}
