// Package agefile seals a YAML or JSON secrets file value by value for age recipients, so
// the file can live in git with its keys, order and comments readable for review while
// every value is ciphertext. The construction is specified in FORMAT.md beside this file;
// testdata holds vectors a second implementation can check itself against.
package agefile

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
)

// metadataKey is the top-level key holding a sealed file's metadata.
const metadataKey = "keyway_age"

// Version is the format version Seal writes. Open reads it and version 1.
const Version = 2

// ErrTampered means a sealed file was altered: a value moved to another key, a key renamed,
// a value, the recipient list or the MAC edited, or a value removed.
var ErrTampered = errors.New("age-sealed file was altered")

// scheme is one format version's value encoding and keys.
type scheme struct {
	version int
	prefix  string // a value is prefix + base64(nonce | ciphertext | tag) + ",type:" + type + "]"
	// keys derives the encryption, nonce and MAC keys from the data key.
	keys func(dataKey []byte) (enc, nonce, mac []byte)
	aad  func(path, typ string) []byte
	// macInput is what the file MAC covers besides the sorted value entries.
	macHeader func(recipients []string) []byte
}

var (
	// v2: AES-256-GCM with a nonce derived by HMAC-SHA256, separate keys from HKDF, the
	// recipient list under the MAC.
	v2 = scheme{
		version: 2,
		prefix:  "ENC[AES256_GCM_HMACNONCE_V2,data:",
		keys: func(k []byte) ([]byte, []byte, []byte) {
			return derive(k, "keyway agefile v2 encryption"), derive(k, "keyway agefile v2 nonce"), derive(k, "keyway agefile v2 mac")
		},
		aad: func(path, typ string) []byte { return []byte("keyway agefile v2\x00" + path + "\x00" + typ) },
		macHeader: func(recipients []string) []byte {
			var b bytes.Buffer
			b.WriteString("keyway agefile v2\x00")
			for _, r := range slices.Sorted(slices.Values(recipients)) {
				b.WriteString(r)
				b.WriteByte(0)
			}
			b.WriteByte(0)
			return b.Bytes()
		},
	}
	// v1 (read only): the data key itself for all three uses; its prefix named AES-GCM-SIV,
	// which it never was.
	v1 = scheme{
		version:   1,
		prefix:    "ENC[AES256_GCM_SIV,data:",
		keys:      func(k []byte) ([]byte, []byte, []byte) { return k, k, k },
		aad:       func(path, typ string) []byte { return []byte(path + "\x00" + typ) },
		macHeader: func([]string) []byte { return nil },
	}
)

func derive(key []byte, info string) []byte {
	out, err := hkdf.Key(sha256.New, key, nil, info, 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	return out
}

func schemeOf(version int) (scheme, error) {
	switch version {
	case 2:
		return v2, nil
	case 1:
		return v1, nil
	}
	return scheme{}, fmt.Errorf("format version %d is not known to this keyway (it reads 1 and 2)", version)
}

// IsSealed reports whether data looks like a file sealed by Seal (any version).
func IsSealed(data []byte) bool {
	return bytes.Contains(data, []byte(metadataKey)) && (bytes.Contains(data, []byte(v2.prefix)) || bytes.Contains(data, []byte(v1.prefix)))
}

type metadata struct {
	Version    int      `yaml:"version"`
	Recipients []string `yaml:"recipients"`
	DataKey    string   `yaml:"data_key"`
	MAC        string   `yaml:"mac"`
}

// Seal encrypts every scalar value of a YAML or JSON mapping in place, in the current format
// version (see FORMAT.md), for the age X25519 recipients.
//
// previous, with ids that open it, supplies the data key of an earlier sealing of the same
// file so unchanged values keep their ciphertext and git diffs show only what changed —
// unless a recipient of previous is no longer among recipients: then a new data key is
// generated and every value re-encrypted, since the removed recipient holds the old key.
func Seal(plain []byte, recipients []string, previous []byte, ids []age.Identity) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no age recipient")
	}
	var rs []age.Recipient
	for _, r := range recipients {
		rec, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, fmt.Errorf("age recipient %q: not an age1… X25519 recipient", r)
		}
		rs = append(rs, rec)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(plain, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the secrets file must be a YAML or JSON mapping")
	}
	root := doc.Content[0]
	if manifest.Get(root, metadataKey) != nil {
		return nil, errors.New("the input is already sealed")
	}
	key := make([]byte, 32)
	reuseWrapped, haveKey := "", false
	if previous != nil && len(ids) > 0 {
		k, prevDoc, err := openDataKey(previous, ids)
		if err != nil {
			return nil, fmt.Errorf("previous sealed file: %w", err)
		}
		pm := metaOf(prevDoc.Content[0])
		// A removed recipient still holds the old data key: only when every earlier
		// recipient remains may the key (and so unchanged ciphertexts) carry over.
		removed := slices.ContainsFunc(pm.Recipients, func(r string) bool { return !slices.Contains(recipients, r) })
		if !removed {
			key, haveKey = k, true
			// Same recipients: keep the wrapped key too, so an unchanged file reseals byte for byte.
			if slices.Equal(slices.Sorted(slices.Values(pm.Recipients)), slices.Sorted(slices.Values(recipients))) {
				reuseWrapped = pm.DataKey
			}
		}
	}
	if !haveKey {
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			return nil, err
		}
	}
	encKey, nonceKey, macKey := v2.keys(key)
	var entries []string
	err := walkScalars(root, "", func(n *yaml.Node, path string) error {
		enc, err := sealValue(v2, encKey, nonceKey, path, scalarType(n), []byte(n.Value))
		if err != nil {
			return err
		}
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: enc, HeadComment: n.HeadComment, LineComment: n.LineComment, FootComment: n.FootComment}
		entries = append(entries, path+"\x00"+enc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	wrapped := reuseWrapped
	if wrapped == "" {
		if wrapped, err = wrapKey(key, rs); err != nil {
			return nil, err
		}
	}
	meta := metadata{Version: v2.version, Recipients: recipients, DataKey: wrapped, MAC: fileMAC(v2, macKey, recipients, entries)}
	var mn yaml.Node
	if err := mn.Encode(meta); err != nil {
		return nil, err
	}
	manifest.Set(root, metadataKey, &mn)
	return encode(&doc)
}

func encode(doc *yaml.Node) ([]byte, error) {
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func wrapKey(key []byte, rs []age.Recipient) (string, error) {
	var wrapped bytes.Buffer
	aw := armor.NewWriter(&wrapped)
	w, err := age.Encrypt(aw, rs...)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(key); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	return wrapped.String(), nil
}

// Open decrypts a sealed file (format version 1 or 2) and returns the plain YAML. Any
// tampering is an error naming the path that failed, never a value.
func Open(data []byte, ids []age.Identity) ([]byte, error) {
	key, doc, err := openDataKey(data, ids)
	if err != nil {
		return nil, err
	}
	root := doc.Content[0]
	meta := metaOf(root)
	sc, err := schemeOf(meta.Version)
	if err != nil {
		return nil, err
	}
	encKey, _, macKey := sc.keys(key)
	manifest.Delete(root, metadataKey)
	var entries []string
	err = walkScalars(root, "", func(n *yaml.Node, path string) error {
		entries = append(entries, path+"\x00"+n.Value)
		typ, plain, err := openValue(sc, encKey, path, n.Value)
		if err != nil {
			return err
		}
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: typeTag(typ), Value: string(plain), HeadComment: n.HeadComment, LineComment: n.LineComment, FootComment: n.FootComment}
		if typ == "str" {
			n.Style = 0
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !hmac.Equal([]byte(fileMAC(sc, macKey, meta.Recipients, entries)), []byte(meta.MAC)) {
		return nil, fmt.Errorf("%w: the MAC does not match (a value was added or removed, the recipients or the MAC edited)", ErrTampered)
	}
	return encode(doc)
}

func openDataKey(data []byte, ids []age.Identity) ([]byte, *yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("not an age-sealed YAML/JSON file")
	}
	meta := metaOf(doc.Content[0])
	if meta.DataKey == "" {
		return nil, nil, fmt.Errorf("no %s metadata block", metadataKey)
	}
	if len(ids) == 0 {
		return nil, nil, errors.New("the file is age-sealed: pass --age-identity")
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(meta.DataKey)), ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, nil, fmt.Errorf("none of the age identities is a recipient (recipients: %s)", strings.Join(meta.Recipients, ", "))
		}
		return nil, nil, fmt.Errorf("%w: the data key does not decrypt", ErrTampered)
	}
	key, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil || len(key) != 32 {
		return nil, nil, fmt.Errorf("%w: the data key is malformed", ErrTampered)
	}
	return key, &doc, nil
}

func metaOf(root *yaml.Node) metadata {
	var m metadata
	if n := manifest.Get(root, metadataKey); n != nil {
		_ = n.Decode(&m)
	}
	return m
}

// walkScalars visits every non-null scalar with its JSON-pointer path (RFC 6901).
func walkScalars(n *yaml.Node, path string, fn func(*yaml.Node, string) error) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := strings.ReplaceAll(strings.ReplaceAll(n.Content[i].Value, "~", "~0"), "/", "~1")
			if err := walkScalars(n.Content[i+1], path+"/"+k, fn); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := walkScalars(c, path+"/"+strconv.Itoa(i), fn); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return nil
		}
		return fn(n, path)
	case yaml.AliasNode:
		return errors.New("anchors and aliases are not supported in secrets files")
	}
	return nil
}

func scalarType(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	case "!!bool":
		return "bool"
	}
	return "str"
}

func typeTag(t string) string {
	switch t {
	case "int", "float", "bool":
		return "!!" + t
	}
	return "!!str"
}

// sealValue encrypts one value:
//
//	nonce = HMAC-SHA256(nonceKey, path | 0x00 | type | 0x00 | value)[:12]
//	data  = nonce | AES-256-GCM-Seal(encKey, nonce, value, aad(path, type))
//
// and returns its encoded form, prefix + base64(data) + ",type:" + type + "]".
func sealValue(sc scheme, encKey, nonceKey []byte, path, typ string, value []byte) (string, error) {
	aead, err := gcm(encKey)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, nonceKey)
	if sc.version == 1 {
		m.Write([]byte("nonce\x00"))
	}
	m.Write([]byte(path + "\x00" + typ + "\x00"))
	m.Write(value)
	nonce := m.Sum(nil)[:aead.NonceSize()]
	ct := aead.Seal(slices.Clone(nonce), nonce, value, sc.aad(path, typ))
	return sc.prefix + base64.StdEncoding.EncodeToString(ct) + ",type:" + typ + "]", nil
}

// openValue decodes and decrypts one encoded value of scheme sc, returning its type.
func openValue(sc scheme, encKey []byte, path, enc string) (string, []byte, error) {
	rest, ok := strings.CutPrefix(enc, sc.prefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: value at %q is not encrypted in format version %d", ErrTampered, path, sc.version)
	}
	b64, typ, ok := strings.Cut(strings.TrimSuffix(rest, "]"), ",type:")
	ct, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || !strings.HasSuffix(rest, "]") {
		return "", nil, fmt.Errorf("%w: value at %q is malformed", ErrTampered, path)
	}
	aead, err := gcm(encKey)
	if err != nil {
		return "", nil, err
	}
	if len(ct) < aead.NonceSize() {
		return "", nil, fmt.Errorf("%w: value at %q is malformed", ErrTampered, path)
	}
	plain, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], sc.aad(path, typ))
	if err != nil {
		return "", nil, fmt.Errorf("%w: value at %q does not belong there (moved, renamed or edited)", ErrTampered, path)
	}
	return typ, plain, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// fileMAC is HMAC-SHA256(macKey, header | each entry "path 0x00 encoded-value" followed by
// 0x00, entries sorted bytewise), base64.
func fileMAC(sc scheme, macKey []byte, recipients, entries []string) string {
	entries = slices.Sorted(slices.Values(entries))
	m := hmac.New(sha256.New, macKey)
	m.Write(sc.macHeader(recipients))
	for _, e := range entries {
		m.Write([]byte(e))
		m.Write([]byte{0})
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
