package sealing

import (
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
	sealed, err := SealAgeFile([]byte(plainFile), []string{id.Recipient().String(), other.Recipient().String()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sealed)
	if strings.Contains(s, "CANARY") || !strings.Contains(s, "secret/data/app:") || !strings.Contains(s, "password: ENC[") || !strings.Contains(s, "# rotated monthly") {
		t.Fatalf("sealed file should keep keys and comments and hide values:\n%s", s)
	}
	for _, ident := range []age.Identity{id, other} {
		plain, err := OpenAgeFile(sealed, []age.Identity{ident})
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
	if _, err := OpenAgeFile(sealed, []age.Identity{stranger}); err == nil || !strings.Contains(err.Error(), "none of the age identities") {
		t.Fatalf("stranger: err = %v", err)
	}
}

func TestAgeFileStableCiphertexts(t *testing.T) {
	id, _ := ageKeys(t)
	r := []string{id.Recipient().String()}
	first, err := SealAgeFile([]byte(plainFile), r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(plainFile, "CANARY-age-token", "CANARY-new-token", 1)
	second, err := SealAgeFile([]byte(changed), r, first, []age.Identity{id})
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
	if !strings.Contains(string(second), valueLine(first, "password")) || valueLine(first, "token") == valueLine(second, "token") {
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
	sealed, err := SealAgeFile([]byte(plainFile), []string{id.Recipient().String()}, nil, nil)
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
		_, err := OpenAgeFile([]byte(bad), []age.Identity{id})
		if !errors.Is(err, ErrTampered) || strings.Contains(err.Error(), "CANARY") {
			t.Errorf("%s: err = %v, want ErrTampered", name, err)
		}
	}
}
