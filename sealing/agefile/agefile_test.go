package agefile

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
)

const plainFile = `# team secrets
secret/data/app:
  password: CANARY-age-pw # rotated monthly
  port: 5432
  debug: true
secret/data/other:
  token: CANARY-age-token
  list: [a, b]
`

func ageKeys(t *testing.T) (*age.X25519Identity, *age.X25519Identity) {
	t.Helper()
	a, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestAgeFileRoundTrip(t *testing.T) {
	id, other := ageKeys(t)
	sealed, err := Seal([]byte(plainFile), []string{id.Recipient().String(), other.Recipient().String()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sealed)
	if strings.Contains(s, "CANARY") || !strings.Contains(s, "secret/data/app:") || !strings.Contains(s, "password: ENC[") || !strings.Contains(s, "# rotated monthly") {
		t.Fatalf("sealed file should keep keys and comments and hide values:\n%s", s)
	}
	for _, ident := range []age.Identity{id, other} {
		plain, err := Open(sealed, []age.Identity{ident})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]map[string]any
		if err := yaml.Unmarshal(plain, &got); err != nil {
			t.Fatal(err)
		}
		app := got["secret/data/app"]
		if app["password"] != "CANARY-age-pw" || app["port"] != 5432 || app["debug"] != true || len(got["secret/data/other"]["list"].([]any)) != 2 {
			t.Fatalf("opened = %v", got)
		}
	}
	stranger, _ := age.GenerateX25519Identity()
	if _, err := Open(sealed, []age.Identity{stranger}); err == nil || !strings.Contains(err.Error(), "none of the age identities") {
		t.Fatalf("stranger: err = %v", err)
	}
}

func TestAgeFileStableCiphertexts(t *testing.T) {
	id, _ := ageKeys(t)
	r := []string{id.Recipient().String()}
	first, err := Seal([]byte(plainFile), r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(plainFile, "CANARY-age-token", "CANARY-new-token", 1)
	second, err := Seal([]byte(changed), r, first, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	a, b := strings.Split(string(first), "\n"), strings.Split(string(second), "\n")
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			diff++
		}
	}
	// The token line and the MAC line change; the data key is re-wrapped (armored, several
	// lines); every other value keeps its ciphertext.
	pw, tok := valueLine(first, "password"), valueLine(first, "token")
	if pw == "" || tok == "" || !strings.Contains(string(second), pw) || tok == valueLine(second, "token") {
		t.Fatalf("unchanged values must keep their ciphertext, changed ones must not (diff lines %d)", diff)
	}
}

func valueLine(data []byte, key string) string {
	for l := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(l, key+": ENC[") {
			return l
		}
	}
	return ""
}

func TestAgeFileTamper(t *testing.T) {
	id, _ := ageKeys(t)
	sealed, err := Seal([]byte(plainFile), []string{id.Recipient().String()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sealed)
	pw, tok := valueLine(sealed, "password"), valueLine(sealed, "token")
	pwVal, tokVal := pw[strings.Index(pw, "ENC["):], tok[strings.Index(tok, "ENC["):]
	macLine := ""
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, "mac: ") {
			macLine = l
		}
	}
	tests := map[string]string{
		"swapped values": strings.NewReplacer(pwVal, tokVal, tokVal, pwVal).Replace(s),
		"renamed key":    strings.Replace(s, "password: ENC[", "passwd: ENC[", 1),
		"edited MAC":     strings.Replace(s, macLine, macLine[:len(macLine)-4]+"AAA=", 1),
		"removed value":  strings.Replace(s, "  debug: "+valueLine(sealed, "debug")[strings.Index(valueLine(sealed, "debug"), "ENC["):]+"\n", "", 1),
	}
	for name, bad := range tests {
		if bad == s {
			t.Fatalf("%s: the test did not change the file", name)
		}
		_, err := Open([]byte(bad), []age.Identity{id})
		if !errors.Is(err, ErrTampered) || strings.Contains(err.Error(), "CANARY") {
			t.Errorf("%s: err = %v, want ErrTampered", name, err)
		}
	}
}

// FuzzOpen: arbitrary input never panics and never opens without the right key.
func FuzzOpen(f *testing.F) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := Seal([]byte(plainFile), []string{id.Recipient().String()}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte("keyway_age: {}\n"))
	f.Add([]byte(plainFile))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Open(data, []age.Identity{id})
		if err == nil && !bytes.Equal(data, sealed) && bytes.Contains(out, []byte("CANARY")) && !bytes.Contains(data, []byte("ENC[")) {
			t.Fatalf("opened unsealed input")
		}
	})
}

// TestAgeFileRemovedRecipient: resealing for fewer recipients must not leave the removed
// recipient's copy of the data key able to read what is written afterwards; adding one keeps
// the key, so unchanged values keep their ciphertext.
func TestAgeFileRemovedRecipient(t *testing.T) {
	stays, leaves := ageKeys(t)
	both := []string{stays.Recipient().String(), leaves.Recipient().String()}
	first, err := Seal([]byte(plainFile), both, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _, err := openDataKey(first, []age.Identity{leaves})
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(plainFile, "CANARY-age-token", "CANARY-after-removal", 1)
	second, err := Seal([]byte(changed), []string{stays.Recipient().String()}, first, []age.Identity{stays})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(second, []age.Identity{leaves}); err == nil {
		t.Fatal("the removed recipient opens the resealed file")
	}
	newKey, _, err := openDataKey(second, []age.Identity{stays})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("the data key survived a recipient's removal")
	}
	if pw := valueLine(first, "password"); strings.Contains(string(second), pw) {
		t.Fatal("a value kept the ciphertext of the old data key")
	}
	// The removed recipient, holding the old data key, cannot open any value written now.
	var doc yaml.Node
	if err := yaml.Unmarshal(second, &doc); err != nil {
		t.Fatal(err)
	}
	opened := 0
	oldEnc, _, _ := v2.keys(oldKey)
	walkScalars(doc.Content[0], "", func(n *yaml.Node, path string) error {
		if _, _, err := openValue(v2, oldEnc, path, n.Value); err == nil {
			opened++
		}
		return nil
	})
	if opened != 0 {
		t.Fatalf("the old data key opens %d values of the resealed file", opened)
	}
	// Adding a recipient keeps the key: unchanged values keep their ciphertext.
	third, err := Seal([]byte(changed), both, second, []age.Identity{stays})
	if err != nil {
		t.Fatal(err)
	}
	if pw := valueLine(second, "password"); !strings.Contains(string(third), pw) {
		t.Fatal("adding a recipient changed an unchanged value's ciphertext")
	}
}
