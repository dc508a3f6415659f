package sealing

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr(s string) *string { return &s }

// sealedWithTemplate seals secret() (password=CANARY-pw, user=admin) and sets the template's
// data.
func sealedWithTemplate(t *testing.T, k *rsa.PrivateKey, data map[string]*string) *SealedSecret {
	t.Helper()
	ss, err := Seal(rand.Reader, &k.PublicKey, secret(), SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ss.Spec.Template.Data = data
	return ss
}

func TestTemplateData(t *testing.T) {
	k := keys(t, 1)[0]
	ss := sealedWithTemplate(t, k, map[string]*string{
		"dsn":      ptr(`postgres://{{ index . "user" }}:{{ .password }}@db:5432/shop`),
		"upper":    ptr(`{{ .user | upper }}-{{ .user | b64enc }}`),
		"plain":    ptr("not a template"),
		"user":     nil, // removes the key
		"missing":  ptr(`[{{ .nothing }}]`),
		"password": ptr(`{{ .password }}!`), // renders over the unsealed value, not its own output
	})
	got, _, err := Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"dsn":      "postgres://admin:CANARY-pw@db:5432/shop",
		"upper":    "ADMIN-YWRtaW4=",
		"plain":    "not a template",
		"missing":  "[]",
		"password": "CANARY-pw!",
	}
	if len(got.Data) != len(want) {
		t.Fatalf("data keys = %v, want %v", got.Data, want)
	}
	for k, v := range want {
		if string(got.Data[k]) != v {
			t.Errorf("data[%q] = %q, want %q", k, got.Data[k], v)
		}
	}
}

func TestTemplateDataRefusals(t *testing.T) {
	k := keys(t, 1)[0]
	for name, tc := range map[string]struct{ tmpl, want string }{
		"env":           {`{{ env "HOME" }}`, `function "env" not defined`},
		"dns":           {`{{ getHostByName "example.com" }}`, `function "getHostByName" not defined`},
		"until":         {`{{ range until 100000000 }}x{{ end }}`, `function "until" not defined`},
		"keygen":        {`{{ genPrivateKey "rsa" }}`, `function "genPrivateKey" not defined`},
		"fail":          {`{{ fail .password }}`, `function "fail" not defined`},
		"syntax":        {`{{ .password `, `template.data "x"`},
		"quoted cause":  {`{{ .password | mustFromJson }}`, `cannot be rendered`},
		"index a value": {`{{ index .password 100 }}`, `cannot be rendered`},
		"too large":     {`{{ range $i, $c := list 1 2 3 4 5 6 7 8 }}{{ $.big }}{{ $.big }}{{ end }}`, "template over its budget: writes more than 1 MiB"},
		"nested ranges": {`{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}`, "template over its budget"},
		"indent 1.5 GB": {`{{ indent 1500000000 "" }}`, "template over its budget: its functions would build more than 16 MiB"},
	} {
		t.Run(name, func(t *testing.T) {
			ss := sealedWithTemplate(t, k, map[string]*string{"x": ptr(tc.tmpl)})
			if name == "too large" {
				ss.Spec.Template.Data["big"] = nil
				s := secret()
				s.Data["big"] = []byte(strings.Repeat("b", 100_000))
				var err error
				if ss, err = Seal(rand.Reader, &k.PublicKey, s, SealOptions{}); err != nil {
					t.Fatal(err)
				}
				ss.Spec.Template.Data = map[string]*string{"x": ptr(tc.tmpl)}
			}
			got, _, err := Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
			if err == nil {
				t.Fatalf("rendered %q", got.Data["x"])
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "CANARY") {
				t.Fatalf("the error carries the value: %v", err)
			}
		})
	}
}

func TestUnsealOwnerReferences(t *testing.T) {
	k := keys(t, 1)[0]
	foreign := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "planted", UID: "u-planted"}
	ss := sealedWithTemplate(t, k, nil)
	ss.Spec.Template.Metadata.OwnerReferences = []metav1.OwnerReference{foreign}

	// From a file (no UID): no owner at all, not the template's.
	got, _, err := Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.OwnerReferences) != 0 {
		t.Fatalf("ownerReferences = %+v, want none", got.OwnerReferences)
	}
	// From a cluster: the SealedSecret controls its Secret.
	ss.Metadata.UID = "u-sealed"
	got, _, _ = Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
	if refs := got.OwnerReferences; len(refs) != 1 || refs[0].UID != "u-sealed" || refs[0].Kind != Kind || refs[0].Controller == nil || !*refs[0].Controller {
		t.Fatalf("ownerReferences = %+v, want the SealedSecret as controller", refs)
	}
	// Asked to skip: the template's own are kept, as upstream does.
	ss.Spec.Template.Metadata.Annotations = map[string]string{AnnotationSkipOwnerReferences: "true"}
	got, _, _ = Unseal(t.Context(), rand.Reader, ss, []*rsa.PrivateKey{k})
	if refs := got.OwnerReferences; len(refs) != 1 || refs[0] != foreign {
		t.Fatalf("ownerReferences = %+v, want the template's", refs)
	}
}
