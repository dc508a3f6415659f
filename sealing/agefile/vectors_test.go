package agefile

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite the format version 2 vectors")

// TestFileVectors: testdata/v1.txtar (written by keyway before format version 2) and
// testdata/v2.txtar each hold an identity, a sealed file and the plain text it opens to.
func TestFileVectors(t *testing.T) {
	if *update {
		writeFileVector(t)
	}
	for _, name := range []string{"v1", "v2"} {
		t.Run(name, func(t *testing.T) {
			files := readTxtar(t, "testdata/"+name+".txtar")
			ids, err := age.ParseIdentities(bytes.NewReader(files["identity.txt"]))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Open(files["sealed.yaml"], ids)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(files["plain.yaml"]) {
				t.Fatalf("opened:\n%s\nwant:\n%s", got, files["plain.yaml"])
			}
			if !IsSealed(files["sealed.yaml"]) || IsSealed(files["plain.yaml"]) {
				t.Fatal("IsSealed misjudges the vector")
			}
		})
	}
}

func readTxtar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range ar.Files {
		files[f.Name] = f.Data
	}
	return files
}

func writeFileVector(t *testing.T) {
	files := readTxtar(t, "testdata/v1.txtar")
	ids, err := age.ParseIdentities(bytes.NewReader(files["identity.txt"]))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(files["plain.yaml"], []string{ids[0].(*age.X25519Identity).Recipient().String()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ar := &txtar.Archive{
		Comment: []byte("expect: Open(sealed.yaml, identity.txt) == plain.yaml (format version 2)\n"),
		Files: []txtar.File{
			{Name: "identity.txt", Data: files["identity.txt"]},
			{Name: "sealed.yaml", Data: sealed},
			{Name: "plain.yaml", Data: files["plain.yaml"]},
		},
	}
	if err := os.WriteFile("testdata/v2.txtar", txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}

// valueVectors is testdata/v2-values.json: from a fixed data key, the derived keys, each
// value's encoded form (deterministic: the nonce is derived) and the file MAC.
type valueVectors struct {
	Comment    string        `json:"comment"`
	DataKey    string        `json:"data_key"`
	EncKey     string        `json:"enc_key"`
	NonceKey   string        `json:"nonce_key"`
	MACKey     string        `json:"mac_key"`
	Recipients []string      `json:"recipients"`
	Values     []valueVector `json:"values"`
	MAC        string        `json:"mac"`
}

type valueVector struct {
	Path      string `json:"path"`
	Type      string `json:"type"`
	Plaintext string `json:"plaintext"`
	Encoded   string `json:"encoded"`
}

func TestValueVectors(t *testing.T) {
	const path = "testdata/v2-values.json"
	if *update {
		key := make([]byte, 32)
		for i := range key {
			key[i] = byte(i)
		}
		enc, nonce, mac := v2.keys(key)
		vv := valueVectors{
			Comment:    "keyway age-sealed file, format version 2: see sealing/agefile/FORMAT.md",
			DataKey:    hex.EncodeToString(key),
			EncKey:     hex.EncodeToString(enc),
			NonceKey:   hex.EncodeToString(nonce),
			MACKey:     hex.EncodeToString(mac),
			Recipients: []string{"age1r9mfylcj503f6ckdktu6h9f38eglwg4a60esq50rajxffpkpk5pqf2467f", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"},
			Values: []valueVector{
				{Path: "/secret~1data~1app/password", Type: "str", Plaintext: "hunter2"},
				{Path: "/secret~1data~1app/port", Type: "int", Plaintext: "5432"},
				{Path: "/secret~1data~1app/debug", Type: "bool", Plaintext: "true"},
				{Path: "/secret~1data~1app/hosts/0", Type: "str", Plaintext: "db-1"},
				{Path: "/secret~1data~1app/empty", Type: "str", Plaintext: ""},
				{Path: "/secret~1data~1app/unicode", Type: "str", Plaintext: "pässwörd 😀"},
			},
		}
		var entries []string
		for i, v := range vv.Values {
			e, err := sealValue(v2, enc, nonce, v.Path, v.Type, []byte(v.Plaintext))
			if err != nil {
				t.Fatal(err)
			}
			vv.Values[i].Encoded = e
			entries = append(entries, v.Path+"\x00"+e)
		}
		vv.MAC = fileMAC(v2, mac, vv.Recipients, entries)
		out, _ := json.MarshalIndent(vv, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vv valueVectors
	if err := json.Unmarshal(raw, &vv); err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(vv.DataKey)
	enc, nonce, mac := v2.keys(key)
	if hex.EncodeToString(enc) != vv.EncKey || hex.EncodeToString(nonce) != vv.NonceKey || hex.EncodeToString(mac) != vv.MACKey {
		t.Fatal("derived keys differ from the vector")
	}
	var entries []string
	for _, v := range vv.Values {
		got, err := sealValue(v2, enc, nonce, v.Path, v.Type, []byte(v.Plaintext))
		if err != nil || got != v.Encoded {
			t.Fatalf("%s: sealed %q, want %q (%v)", v.Path, got, v.Encoded, err)
		}
		typ, plain, err := openValue(v2, enc, v.Path, v.Encoded)
		if err != nil || typ != v.Type || string(plain) != v.Plaintext {
			t.Fatalf("%s: opened %q %q %v", v.Path, typ, plain, err)
		}
		entries = append(entries, v.Path+"\x00"+v.Encoded)
	}
	if got := fileMAC(v2, mac, vv.Recipients, entries); got != vv.MAC {
		t.Fatalf("MAC = %s, want %s", got, vv.MAC)
	}
}

// TestVersions: the recipient list is under the MAC in version 2; values of another version
// and unknown versions are refused by name.
func TestVersions(t *testing.T) {
	id, other := ageKeys(t)
	sealed, err := Seal([]byte(plainFile), []string{id.Recipient().String()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sealed)
	if !strings.Contains(s, "version: 2") || !strings.Contains(s, v2.prefix) || strings.Contains(s, "GCM_SIV") {
		t.Fatalf("not a version 2 file:\n%s", s)
	}
	for name, tc := range map[string]struct {
		file string
		want string
		is   error
	}{
		"recipient added to the list":   {strings.Replace(s, "  recipients:\n", "  recipients:\n    - "+other.Recipient().String()+"\n", 1), "MAC does not match", ErrTampered},
		"version 1 prefix in a v2 file": {strings.Replace(s, v2.prefix, v1.prefix, 1), "not encrypted in format version 2", ErrTampered},
		"unknown version":               {strings.Replace(s, "version: 2", "version: 3", 1), "format version 3 is not known", nil},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.file == s {
				t.Fatal("the case did not change the file")
			}
			_, err := Open([]byte(tc.file), []age.Identity{id})
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A version 1 file resealed comes out in version 2 with the same data key.
	v1file := readTxtar(t, "testdata/v1.txtar")
	ids, _ := age.ParseIdentities(bytes.NewReader(v1file["identity.txt"]))
	resealed, err := Seal(v1file["plain.yaml"], []string{ids[0].(*age.X25519Identity).Recipient().String()}, v1file["sealed.yaml"], ids)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resealed), "version: 2") {
		t.Fatalf("resealed v1 file:\n%s", resealed)
	}
	if got, err := Open(resealed, ids); err != nil || string(got) != string(v1file["plain.yaml"]) {
		t.Fatalf("resealed v1 file opens to %q, %v", got, err)
	}
}
