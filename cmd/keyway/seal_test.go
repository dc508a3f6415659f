package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyway-dev/keyway/internal/testenv"
)

// sealKeys writes an RSA key and its self-signed certificate, the way the sealed-secrets
// controller makes them.
func sealKeys(t *testing.T, dir, name string) (keyFile, certFile string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealed-secret"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyFile, certFile
}

func secretData(t *testing.T, jsonText string) map[string]string {
	t.Helper()
	var s corev1.Secret
	if err := json.Unmarshal([]byte(jsonText), &s); err != nil {
		t.Fatalf("not a Secret: %v\n%s", err, jsonText)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// TestKubesealInterop: what keyway seals, upstream kubeseal v0.27.1 unseals; what kubeseal
// seals, keyway unseals — for each scope.
func TestKubesealInterop(t *testing.T) {
	kubeseal, err := testenv.Binary("kubeseal")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, cert := sealKeys(t, dir, "cluster")
	secretFile := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(secretFile, []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: CANARY-interop\ndata:\n  user: YWRtaW4=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + filepath.Join(dir, "no-kubeconfig")}
	want := map[string]string{"password": "CANARY-interop", "user": "admin"}
	for _, scope := range []string{"strict", "namespace-wide", "cluster-wide"} {
		t.Run(scope, func(t *testing.T) {
			sealed := filepath.Join(dir, scope+"-keyway.json")
			if out, stderr, err := runTool(t, "keyway", nil, dir, "seal", "--cert", cert, "--scope", scope, "-f", secretFile, "-w", sealed); err != nil {
				t.Fatalf("keyway seal: %v %s %s", err, out, stderr)
			}
			out, stderr, err := runTool(t, kubeseal, env, dir, "--recovery-unseal", "--recovery-private-key", key, "--secret-file", sealed)
			if err != nil {
				t.Fatalf("kubeseal --recovery-unseal of keyway's output: %v\n%s", err, stderr)
			}
			if got := secretData(t, out); got["password"] != want["password"] || got["user"] != want["user"] {
				t.Fatalf("kubeseal unsealed %v", got)
			}

			up := filepath.Join(dir, scope+"-kubeseal.json")
			out, stderr, err = runTool(t, kubeseal, env, dir, "--cert", cert, "--scope", scope, "--secret-file", secretFile, "-o", "json")
			if err != nil {
				t.Fatalf("kubeseal seal: %v\n%s", err, stderr)
			}
			if err := os.WriteFile(up, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			out, stderr, err = runTool(t, "keyway", nil, dir, "seal", "--recovery-unseal", "--recovery-private-key", key, "-f", up)
			if err != nil {
				t.Fatalf("keyway --recovery-unseal of kubeseal's output: %v\n%s", err, stderr)
			}
			if got := secretData(t, out); got["password"] != want["password"] || got["user"] != want["user"] {
				t.Fatalf("keyway unsealed %v", got)
			}
		})
	}
	// spec.template.data is a Go template over the unsealed values: both tools unseal the
	// same SealedSecret to the same data. (A null entry removes the key in upstream's
	// current controller and in keyway; kubeseal v0.27.1 writes it empty, so the unit
	// tests cover that one.)
	t.Run("template data", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "strict-keyway.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ss map[string]any
		if err := json.Unmarshal(raw, &ss); err != nil {
			t.Fatal(err)
		}
		tmpl := ss["spec"].(map[string]any)["template"].(map[string]any)
		tmpl["data"] = map[string]any{"dsn": `{{ .user }}:{{ index . "password" | upper }}@db`, "plain": "text"}
		tmpl["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": "planted", "uid": "u1"}}
		raw, _ = json.Marshal(ss)
		file := filepath.Join(dir, "template.json")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		upstream, stderr, err := runTool(t, kubeseal, env, dir, "--recovery-unseal", "--recovery-private-key", key, "--secret-file", file)
		if err != nil {
			t.Fatalf("kubeseal: %v\n%s", err, stderr)
		}
		ours, stderr, err := runTool(t, "keyway", nil, dir, "seal", "--recovery-unseal", "--recovery-private-key", key, "-f", file)
		if err != nil {
			t.Fatalf("keyway: %v\n%s", err, stderr)
		}
		want := map[string]string{"dsn": "admin:CANARY-INTEROP@db", "password": "CANARY-interop", "user": "admin", "plain": "text"}
		for who, out := range map[string]string{"kubeseal": upstream, "keyway": ours} {
			if got := secretData(t, out); !maps.Equal(got, want) {
				t.Errorf("%s unsealed %v, want %v", who, got, want)
			}
			if strings.Contains(out, "planted") {
				t.Errorf("%s kept the template's ownerReferences:\n%s", who, out)
			}
		}
	})
}

// TestSealCLI covers multi-cluster sealing, offline re-encryption, validation, raw values,
// --merge-into and the refusals.
func TestSealCLI(t *testing.T) {
	dir := t.TempDir()
	k1, c1 := sealKeys(t, dir, "eu")
	k2, c2 := sealKeys(t, dir, "us")
	secretFile := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(secretFile, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\nstringData: {password: CANARY-cli}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seal := func(args ...string) (string, string, error) {
		return runTool(t, "keyway", nil, dir, append([]string{"seal"}, args...)...)
	}

	// Two clusters, one document each; each opens only with its own key.
	out, stderr, err := seal("--cert", c1, "--cert", c2, "-o", "yaml", "-f", secretFile)
	if err != nil || strings.Count(out, "kind: SealedSecret") != 2 || strings.Contains(out, "CANARY") {
		t.Fatalf("multi-cluster seal: %v %s\n%s", err, stderr, out)
	}
	both := filepath.Join(dir, "both.yaml")
	os.WriteFile(both, []byte(out), 0o600)
	if _, stderr, err := seal("--validate", "--recovery-private-key", k1, "-f", both); err == nil || !strings.Contains(stderr, "cannot decrypt") {
		t.Fatalf("validate with one cluster's key: err = %v, stderr %q; the other document must fail", err, stderr)
	}
	if _, stderr, err := seal("--validate", "--recovery-private-key", k1+","+k2, "-f", both); err != nil || !strings.Contains(stderr, "2 SealedSecret(s) valid") {
		t.Fatalf("validate with both keys: %v %s", err, stderr)
	}

	// Offline re-encryption from eu's key to us's.
	euOnly := filepath.Join(dir, "eu.json")
	if _, stderr, err := seal("--cert", c1, "-f", secretFile, "-w", euOnly); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	re := filepath.Join(dir, "re.json")
	if _, stderr, err := seal("--re-encrypt", "--recovery-private-key", k1, "--cert", c2, "-f", euOnly, "-w", re); err != nil {
		t.Fatalf("re-encrypt: %v %s", err, stderr)
	}
	out, _, err = seal("--recovery-unseal", "--recovery-private-key", k2, "-f", re)
	if err != nil || secretData(t, out)["password"] != "CANARY-cli" {
		t.Fatalf("re-encrypted SealedSecret does not open with the new key: %v\n%s", err, out)
	}

	// A hostile template in a SealedSecret stops on its budget in --recovery-unseal too,
	// and --validate never evaluates it.
	for i, bomb := range []string{
		`{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}{{end}}`,
		`{{indent 1500000000 ""}}`,
	} {
		b, _ := os.ReadFile(re)
		var ss map[string]any
		if err := json.Unmarshal(b, &ss); err != nil {
			t.Fatal(err)
		}
		spec := ss["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		if tmpl == nil {
			tmpl = map[string]any{}
			spec["template"] = tmpl
		}
		tmpl["data"] = map[string]any{"x": bomb}
		b, _ = json.Marshal(ss)
		hostile := filepath.Join(dir, fmt.Sprintf("bomb-%d.json", i))
		os.WriteFile(hostile, b, 0o600)
		start := time.Now()
		out, stderr, err := seal("--recovery-unseal", "--recovery-private-key", k2, "-f", hostile)
		if err == nil || out != "" || !strings.Contains(stderr, "template over its budget") || time.Since(start) > 10*time.Second {
			t.Fatalf("a hostile template in --recovery-unseal: %v after %s\n%s\n%s", err, time.Since(start), out, stderr)
		}
		if _, stderr, err := seal("--validate", "--recovery-private-key", k2, "-f", hostile); err != nil {
			t.Fatalf("--validate evaluated a template: %v %s", err, stderr)
		}
	}

	// Raw values and --merge-into.
	valFile := filepath.Join(dir, "v.txt")
	os.WriteFile(valFile, []byte("extra-value"), 0o600)
	raw, stderr, err := seal("--raw", "--cert", c1, "--namespace", "shop", "--name", "db", "--from-file", valFile)
	if err != nil || len(strings.TrimSpace(raw)) < 100 {
		t.Fatalf("raw: %v %s %q", err, stderr, raw)
	}
	extra := filepath.Join(dir, "extra.yaml")
	os.WriteFile(extra, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\nstringData: {token: tok}\n"), 0o600)
	if _, stderr, err := seal("--cert", c1, "-f", extra, "--merge-into", euOnly); err != nil {
		t.Fatalf("merge-into: %v %s", err, stderr)
	}
	out, _, err = seal("--recovery-unseal", "--recovery-private-key", k1, "-f", euOnly)
	if got := secretData(t, out); err != nil || got["password"] != "CANARY-cli" || got["token"] != "tok" {
		t.Fatalf("after merge: %v %v", got, err)
	}

	// Refusals: clear errors, exit non-zero, no output, no values.
	garbage := filepath.Join(dir, "garbage.yaml")
	os.WriteFile(garbage, []byte("{{{{"), 0o600)
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	noNS := filepath.Join(dir, "nons.yaml")
	os.WriteFile(noNS, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {p: CANARY-nons}\n"), 0o600)
	truncated := filepath.Join(dir, "truncated.yaml")
	os.WriteFile(truncated, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop\nstringData: {p: \"CANARY-tr"), 0o600)
	cm := filepath.Join(dir, "cm.yaml")
	os.WriteFile(cm, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n"), 0o600)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no cert":       {[]string{"-f", secretFile, "--kubeconfig", filepath.Join(dir, "missing")}, "no --cert given and the controller's certificate could not be fetched"},
		"garbage input": {[]string{"--cert", c1, "-f", garbage}, "garbage.yaml"},
		"empty input":   {[]string{"--cert", c1, "-f", empty}, "no document to seal"},
		"no namespace":  {[]string{"--cert", c1, "-f", noNS}, "has no metadata.namespace"},
		"not a Secret":  {[]string{"--cert", c1, "-f", cm}, `kind "ConfigMap" is not a Secret`},
		"cert is a key": {[]string{"--cert", k1, "-f", secretFile}, "no PEM certificate"},
		"bad scope":     {[]string{"--cert", c1, "--scope", "global", "-f", secretFile}, `scope "global"`},
		"ns mismatch":   {[]string{"--cert", c1, "--namespace", "other", "-f", secretFile}, "namespace mismatch"},
		"truncated":     {[]string{"--cert", c1, "-f", truncated}, "truncated.yaml"},
	} {
		out, stderr, err := seal(tc.args...)
		if err == nil || out != "" || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "CANARY") {
			t.Errorf("%s: err = %v, stdout %q, stderr %q; want failure naming %q", name, err, out, stderr, tc.want)
		}
	}
}

// TestRenderSealTo: with --seal-to, Secrets that received values leave the render sealed;
// everything else renders as usual.
func TestRenderSealTo(t *testing.T) {
	dir := t.TempDir()
	key, cert := sealKeys(t, dir, "cluster")
	qs, _ := filepath.Abs("../../examples/quickstart")
	out, stderr, err := runTool(t, "keyway", nil, dir, "render", "--secrets-file", qs+"/secrets.enc.yaml", "--age-identity", qs+"/demo-identity.txt",
		"--seal-to", cert, "--seal-namespace", "shop", qs+"/manifests")
	if err != nil {
		t.Fatalf("render --seal-to: %v\n%s", err, stderr)
	}
	if strings.Count(out, "kind: SealedSecret") != 2 || strings.Contains(out, "demo-Pa55w0rd") || strings.Contains(out, "demo-api-token") || !strings.Contains(out, "kind: Deployment") {
		t.Fatalf("output:\n%s", out)
	}
	sealed := filepath.Join(dir, "sealed.yaml")
	if err := os.WriteFile(sealed, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	// The non-Secret documents are not SealedSecrets; unseal only the sealed ones.
	var onlySealed []string
	for doc := range strings.SplitSeq(out, "\n---\n") {
		if strings.Contains(doc, "kind: SealedSecret") {
			onlySealed = append(onlySealed, doc)
		}
	}
	os.WriteFile(sealed, []byte(strings.Join(onlySealed, "\n---\n")), 0o600)
	un, stderr, err := runTool(t, "keyway", nil, dir, "seal", "--recovery-unseal", "--recovery-private-key", key, "-o", "yaml", "-f", sealed)
	if err != nil || !strings.Contains(un, "password: ZGVtby1QYTU1dzByZA==") {
		t.Fatalf("unseal: %v %s\n%s", err, stderr, un)
	}
}
