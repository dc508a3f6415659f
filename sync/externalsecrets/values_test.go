package externalsecrets

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyway-dev/keyway/providers"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// TestConvertKey: ESO's conversion strategies, as its utils convert key names found by
// extract and find (checked against ESO v1.3.2's pkg/utils).
func TestConvertKey(t *testing.T) {
	for _, tc := range []struct{ in, strategy, want string }{
		{"a.b-c_d", "Default", "a.b-c_d"},
		{"a:b/c d", "Default", "a_b_c_d"},
		{"a:b", "", "a_b"},
		{"a:b", "Unicode", "a_U003a_b"},
		{"a_U002e_b", "Unicode", "a_U002e_b"}, // already valid: left alone, never decoded
		{"ключ", "Default", "ключ"},           // letters of any script are valid
		{"a@b", "Unicode", "a_U0040_b"},
	} {
		if got := convertKey(tc.in, esStrategy(tc.strategy)); got != tc.want {
			t.Errorf("convertKey(%q, %s) = %q, want %q", tc.in, tc.strategy, got, tc.want)
		}
	}
	out := map[string][]byte{}
	if err := addConverted(out, "a:b", "Default", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := addConverted(out, "a/b", "Default", []byte("2")); err == nil {
		t.Fatal("two keys converting to a_b: no collision error")
	}
}

// TestValueBytes: values as ESO gives them — null is empty, numbers plain decimal, Auto
// decodes padded base64 or base64url only, an exact key with dots wins over the path.
func TestValueBytes(t *testing.T) {
	for in, want := range map[any]string{"s": "s", true: "true", float64(1e21): "1000000000000000000000", float64(2.5): "2.5"} {
		if got := string(stringify(in)); got != want {
			t.Errorf("stringify(%v) = %q, want %q", in, got, want)
		}
	}
	if got := stringify(nil); len(got) != 0 {
		t.Errorf("null gives %q, want nothing", got)
	}
	for in, want := range map[string]string{"secret": "secret", "admin1": "admin1", "aGVsbG8=": "hello", "aGk-": "hi>"} {
		got, err := decode([]byte(in), "Auto")
		if err != nil || string(got) != want {
			t.Errorf("Auto %q = %q, %v; want %q", in, got, err, want)
		}
	}
	sec := providers.Secret{Data: map[string]any{"a.b": "exact", "a": map[string]any{"b": "path"}, "n": map[string]any{"x": "y"}}}
	if got, err := property(sec, "a.b"); err != nil || string(got) != "exact" {
		t.Errorf("property a.b = %q, %v; want the exact key", got, err)
	}
	if got, err := property(sec, "n.x"); err != nil || string(got) != "y" {
		t.Errorf("property n.x = %q, %v", got, err)
	}
	if _, err := property(sec, "n.z"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("a missing path: %v", err)
	}
}

func esStrategy(s string) esv1.ExternalSecretConversionStrategy {
	return esv1.ExternalSecretConversionStrategy(s)
}

// TestTemplateOrder: as ESO — templateFrom, then template.data (which wins on a key both
// set), then metadata labels and annotations, executed as templates; without a template
// the Secret takes the ExternalSecret's own labels and annotations.
func TestTemplateOrder(t *testing.T) {
	literal := `{k: "from-templateFrom", other: "kept"}`
	es := &esv1.ExternalSecret{}
	es.Labels = map[string]string{"team": "shop"}
	es.Spec.Target.Template = &esv1.ExternalSecretTemplate{
		Data:         map[string]string{"k": "from-data {{ .user }}"},
		TemplateFrom: []esv1.TemplateFrom{{Literal: &literal}},
		Metadata:     esv1.ExternalSecretTemplateMetadata{Labels: map[string]string{"user": "{{ .user }}"}, Annotations: map[string]string{"a": "{{ .user | upper }}"}},
	}
	data, _, meta, err := render(t.Context(), es, map[string][]byte{"user": []byte("alice")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(data["k"]) != "from-data alice" || string(data["other"]) != "kept" {
		t.Errorf("data %q", data)
	}
	if meta.Labels["user"] != "alice" || meta.Annotations["a"] != "ALICE" || meta.Labels["team"] != "" {
		t.Errorf("metadata %v", meta)
	}
	es.Spec.Target.Template = nil
	es.Annotations = map[string]string{"note": "n"}
	_, _, meta, err = render(t.Context(), es, map[string][]byte{"user": []byte("alice")}, nil)
	if err != nil || meta.Labels["team"] != "shop" || meta.Annotations["note"] != "n" {
		t.Errorf("no template: metadata %v, %v", meta, err)
	}
}

// TestDataWinsOverDataFrom: a key set by data[] keeps its value when a dataFrom extract
// brings the same key, as in ESO; extract with a property takes the keys of the object
// there; null is empty.
func TestDataWinsOverDataFrom(t *testing.T) {
	st := &storeConfig{backend: "fake", fake: map[string]string{
		"db\x00":   `{"user":"from-extract","pass":"p","empty":null}`,
		"user\x00": "from-data",
		"nest\x00": `{"inner":{"a":"1","b":"2"},"top":"x"}`,
	}}
	es := &esv1.ExternalSecret{}
	es.Spec.Data = []esv1.ExternalSecretData{{SecretKey: "user", RemoteRef: esv1.ExternalSecretDataRemoteRef{Key: "user"}}}
	es.Spec.DataFrom = []esv1.ExternalSecretDataFromRemoteRef{
		{Extract: &esv1.ExternalSecretDataRemoteRef{Key: "db"}},
		{Extract: &esv1.ExternalSecretDataRemoteRef{Key: "nest", Property: "inner"}},
	}
	out, _, err := (&Syncer{}).values(t.Context(), st, es, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if string(out["user"]) != "from-data" || string(out["pass"]) != "p" || string(out["a"]) != "1" || string(out["b"]) != "2" {
		t.Errorf("values %q", out)
	}
	if v, ok := out["empty"]; !ok || len(v) != 0 {
		t.Errorf("null: %q, %v", v, ok)
	}
	if _, ok := out["top"]; ok {
		t.Error("extract with a property took keys from outside it")
	}
}

// TestBookkeeping: ESO v1.x's labels and data hash on a target Secret (the hashes checked
// against SHA3-224 computed outside Go, of the text ESO hashes).
func TestBookkeeping(t *testing.T) {
	es := &esv1.ExternalSecret{}
	es.Namespace, es.Name = "shop", "db"
	sec := &corev1.Secret{Data: map[string][]byte{"password": []byte("45Ssdfljkshd4r")}}
	bookkeeping(sec, es, esv1.CreatePolicyOwner)
	if sec.Labels[LabelManaged] != "true" || sec.Labels[LabelOwner] != "5cb53bbbf776b3913df48671d8f6ea51a705aac7e8938ae122b52eba" {
		t.Errorf("labels %v", sec.Labels)
	}
	if h := sec.Annotations[AnnotationDataHash]; h != "2d81d4efa20818ecb13c9170fa8f5d3491b8492b1056b0e5add7fc81" {
		t.Errorf("data hash %s", h)
	}
	bookkeeping(sec, es, esv1.CreatePolicyOrphan)
	if _, ok := sec.Labels[LabelOwner]; ok || sec.Labels[LabelManaged] != "true" {
		t.Errorf("Orphan: labels %v", sec.Labels)
	}
}

// TestRewrite: rewrites apply in order to every key, as ESO's: a regexp, then a transform
// template whose .value is the key; a merge rewrite is refused.
func TestRewrite(t *testing.T) {
	in := map[string][]byte{"user": []byte("u"), "pass": []byte("p")}
	out, err := rewrite(t.Context(), "dataFrom[0].rewrite", []esv1.ExternalSecretRewrite{
		{Regexp: &esv1.ExternalSecretRewriteRegexp{Source: "^(.*)$", Target: "app_$1"}},
		{Transform: &esv1.ExternalSecretRewriteTransform{Template: "{{ .value | upper }}"}},
	}, in)
	if err != nil || string(out["APP_USER"]) != "u" || string(out["APP_PASS"]) != "p" || len(out) != 2 {
		t.Fatalf("rewrite: %q, %v", out, err)
	}
	if _, err := rewrite(t.Context(), "r", []esv1.ExternalSecretRewrite{{}}, in); err == nil {
		t.Fatal("an empty (merge) rewrite was accepted")
	}
	if _, err := rewrite(t.Context(), "r", []esv1.ExternalSecretRewrite{{Transform: &esv1.ExternalSecretRewriteTransform{Template: "{{ .value"}}}, in); err == nil {
		t.Fatal("a broken transform template was accepted")
	}
}
