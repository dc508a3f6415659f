package sealing

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// AgeMetadataKey is the top-level key holding an age-sealed file's metadata.
const AgeMetadataKey = "keyway_age"

const encPrefix = "ENC[AES256_GCM_SIV,data:"

// ErrTampered means an age-sealed file was altered: a value moved to another key, a key
// renamed, a value or the MAC edited, or a value removed.
var ErrTampered = errors.New("age-sealed file was altered")

// IsAgeFile reports whether data is a YAML/JSON file sealed by SealAgeFile.
func IsAgeFile(data []byte) bool {
	return bytes.Contains(data, []byte(AgeMetadataKey)) && bytes.Contains(data, []byte(encPrefix))
}

type ageMeta struct {
	Version    int      `yaml:"version"`
	Recipients []string `yaml:"recipients"`
	DataKey    string   `yaml:"data_key"`
	MAC        string   `yaml:"mac"`
}

// SealAgeFile encrypts every scalar value of a YAML or JSON document in place, keeping keys,
// order and comments readable for review. Each value is AES-256-GCM under one data key with
// a synthetic nonce (HMAC of its path, type and value), bound to its path as additional data;
// so moving a value or renaming its key is detected, and re-sealing an unchanged value gives
// the same ciphertext. The data key is age-encrypted to the recipients in the metadata
// block, with a MAC over every path and ciphertext.
//
// previous, with ids that open it, supplies the data key of an earlier sealing of the same
// file so unchanged values keep their ciphertext and git diffs show only what changed —
// unless a recipient of previous is no longer among recipients: then a new data key is
// generated and every value re-encrypted, since the removed recipient holds the old key.
func SealAgeFile(plain []byte, recipients []string, previous []byte, ids []age.Identity) ([]byte, error) {
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
	if mappingValue(root, AgeMetadataKey) != nil {
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
	var entries []string
	err := walkScalars(root, "", func(n *yaml.Node, path string) error {
		typ := scalarType(n)
		ct, err := sealValue(key, path, typ, []byte(n.Value))
		if err != nil {
			return err
		}
		enc := encPrefix + base64.StdEncoding.EncodeToString(ct) + ",type:" + typ + "]"
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
	meta := ageMeta{Version: 1, Recipients: recipients, DataKey: wrapped, MAC: mac(key, entries)}
	var mn yaml.Node
	if err := mn.Encode(meta); err != nil {
		return nil, err
	}
	root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: AgeMetadataKey}, &mn)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
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

// OpenAgeFile decrypts a file sealed by SealAgeFile and returns the plain YAML. Any
// tampering is an error naming the path that failed, never a value.
func OpenAgeFile(data []byte, ids []age.Identity) ([]byte, error) {
	key, doc, err := openDataKey(data, ids)
	if err != nil {
		return nil, err
	}
	root := doc.Content[0]
	meta := metaOf(root)
	removeKey(root, AgeMetadataKey)
	var entries []string
	err = walkScalars(root, "", func(n *yaml.Node, path string) error {
		enc := n.Value
		entries = append(entries, path+"\x00"+enc)
		rest, ok := strings.CutPrefix(enc, encPrefix)
		if !ok {
			return fmt.Errorf("%w: value at %q is not encrypted", ErrTampered, path)
		}
		b64, typ, ok := strings.Cut(strings.TrimSuffix(rest, "]"), ",type:")
		ct, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil {
			return fmt.Errorf("%w: value at %q is malformed", ErrTampered, path)
		}
		plain, err := openValue(key, path, typ, ct)
		if err != nil {
			return fmt.Errorf("%w: value at %q does not belong there (moved, renamed or edited)", ErrTampered, path)
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
	if !hmac.Equal([]byte(mac(key, entries)), []byte(meta.MAC)) {
		return nil, fmt.Errorf("%w: the MAC does not match (a value was added, removed or the MAC edited)", ErrTampered)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func openDataKey(data []byte, ids []age.Identity) ([]byte, *yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("not an age-sealed YAML/JSON file")
	}
	meta := metaOf(doc.Content[0])
	if meta.DataKey == "" {
		return nil, nil, fmt.Errorf("no %s metadata block", AgeMetadataKey)
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

func metaOf(root *yaml.Node) ageMeta {
	var m ageMeta
	if n := mappingValue(root, AgeMetadataKey); n != nil {
		_ = n.Decode(&m)
	}
	return m
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func removeKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// walkScalars visits every non-null scalar with its JSON-pointer path.
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

// sealValue: nonce = HMAC-SHA256(key, "nonce"|path|0|type|0|value)[:12];
// out = nonce | AES-256-GCM(key, nonce, value, aad = path|0|type).
func sealValue(key []byte, path, typ string, value []byte) ([]byte, error) {
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("nonce\x00" + path + "\x00" + typ + "\x00"))
	m.Write(value)
	nonce := m.Sum(nil)[:aead.NonceSize()]
	return aead.Seal(append([]byte(nil), nonce...), nonce, value, []byte(path+"\x00"+typ)), nil
}

func openValue(key []byte, path, typ string, ct []byte) ([]byte, error) {
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(ct) < aead.NonceSize() {
		return nil, errors.New("short")
	}
	return aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], []byte(path+"\x00"+typ))
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func mac(key []byte, entries []string) string {
	sort.Strings(entries)
	m := hmac.New(sha256.New, key)
	for _, e := range entries {
		m.Write([]byte(e))
		m.Write([]byte{0})
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
