package sealedsecrets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/parallel"
	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sealing"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

var outage = flag.Duration("outage", 0, "TestAPIServerOutage: how long the API server stays down after the leader gives up")

const canary = "CANARY-unsealer"

type fixture struct {
	kube kubernetes.Interface
	dyn  dynamic.Interface
	u    *sealedsecrets.Unsealer
	srv  *httptest.Server
	pub  *rsa.PublicKey
	stop context.CancelFunc // stops the unsealer
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	crd, err := os.ReadFile("../../examples/sealedsecret/crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, crd); err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	f.kube = kubernetes.NewForConfigOrDie(env.Config)
	f.dyn = dynamic.NewForConfigOrDie(env.Config)
	for _, ns := range []string{"keyway-system", "app"} {
		if _, err := f.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	f.u = sealedsecrets.New(f.kube, f.dyn, sealedsecrets.Options{Namespace: "keyway-system", KeyBits: 2048})
	runCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.stop = cancel
	if err := f.u.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.u.Run(runCtx) }()
	f.srv = httptest.NewServer(f.u.Handler())
	t.Cleanup(f.srv.Close)
	// The first key is generated on start; the certificate endpoint serves it.
	var certPEM []byte
	poll(t, "the first sealing key", func() bool {
		resp, err := http.Get(f.srv.URL + "/v1/cert.pem")
		if err != nil || resp.StatusCode != 200 {
			return false
		}
		defer resp.Body.Close()
		certPEM, _ = io.ReadAll(resp.Body)
		return true
	})
	if f.pub, err = sealing.ParseCert(certPEM, time.Now()); err != nil {
		t.Fatal(err)
	}
	return f
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, 30*time.Second, cond)
}

// runUnsealer starts an unsealer with o on cfg, leading, until stop is called or the test
// ends.
func runUnsealer(t *testing.T, cfg *rest.Config, o sealedsecrets.Options) (u *sealedsecrets.Unsealer, stop func()) {
	t.Helper()
	u = sealedsecrets.New(kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg), o)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = u.Run(ctx) }()
	return u, stop
}

// createSealed seals each of n Secrets made by secret for pub and creates the
// SealedSecrets, several at a time.
func createSealed(ctx context.Context, dyn dynamic.Interface, pub *rsa.PublicKey, n int, secret func(i int) *corev1.Secret) error {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	_, err := parallel.Map(idx, func(_ int, i int) (struct{}, error) {
		s := secret(i)
		ss, err := sealing.Seal(rand.Reader, pub, s, sealing.SealOptions{})
		if err != nil {
			return struct{}{}, err
		}
		raw, err := json.Marshal(ss)
		if err != nil {
			return struct{}{}, err
		}
		var obj unstructured.Unstructured
		if err := json.Unmarshal(raw, &obj.Object); err != nil {
			return struct{}{}, err
		}
		_, err = dyn.Resource(sealedsecrets.SealedSecretGVR).Namespace(s.Namespace).Create(ctx, &obj, metav1.CreateOptions{})
		return struct{}{}, err
	})
	return err
}

func (f *fixture) create(t *testing.T, ss *sealing.SealedSecret) *unstructured.Unstructured {
	t.Helper()
	raw, _ := json.Marshal(ss)
	var obj unstructured.Unstructured
	if err := json.Unmarshal(raw, &obj.Object); err != nil {
		t.Fatal(err)
	}
	out, err := f.dyn.Resource(sealedsecrets.SealedSecretGVR).Namespace(ss.Metadata.Namespace).Create(t.Context(), &obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sealFor(t *testing.T, pub *rsa.PublicKey, name, value string) *sealing.SealedSecret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", Labels: map[string]string{"team": "shop"}}, StringData: map[string]string{"password": value}}
	ss, err := sealing.Seal(rand.Reader, pub, s, sealing.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func condition(t *testing.T, f *fixture, name string) (status, reason string, observed int64) {
	t.Helper()
	obj, err := f.dyn.Resource(sealedsecrets.SealedSecretGVR).Namespace("app").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "", "", 0
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	observed, _, _ = unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if len(conds) == 0 {
		return "", "", observed
	}
	c := conds[0].(map[string]any)
	if s, _ := c["message"].(string); strings.Contains(s, canary) {
		t.Fatalf("status leaks a value: %v", c)
	}
	return c["status"].(string), c["reason"].(string), observed
}

func events(t *testing.T, f *fixture, name string) string {
	t.Helper()
	list, err := f.kube.CoreV1().Events("app").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range list.Items {
		fmt.Fprintf(&b, "%s %s %s\n", e.Type, e.Reason, e.Message)
	}
	if strings.Contains(b.String(), canary) {
		t.Fatalf("events leak a value:\n%s", b.String())
	}
	return b.String()
}

func TestUnsealer(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	secretsAPI := f.kube.CoreV1().Secrets("app")

	t.Run("unseals, owns, reports", func(t *testing.T) {
		f.create(t, sealFor(t, f.pub, "db", canary+"-db"))
		var s *corev1.Secret
		poll(t, "the Secret", func() bool {
			var err error
			s, err = secretsAPI.Get(ctx, "db", metav1.GetOptions{})
			return err == nil
		})
		if string(s.Data["password"]) != canary+"-db" || s.Labels["team"] != "shop" || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "SealedSecret" {
			t.Fatalf("secret = %+v", s)
		}
		poll(t, "Synced=True", func() bool { st, _, gen := condition(t, f, "db"); return st == "True" && gen == 1 })
		poll(t, "the Unsealed event", func() bool { return strings.Contains(events(t, f, "db"), "Normal Unsealed") })

		// A hand edit is undone from the watch, not at the next resync (10 minutes here).
		s.Data["password"] = []byte("hand-edited")
		if _, err := secretsAPI.Update(ctx, s, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the edit to be undone", func() bool {
			s, err := secretsAPI.Get(ctx, "db", metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == canary+"-db"
		})
		// The SealedSecret says who did it, never what they wrote.
		poll(t, "the drift warning", func() bool {
			return strings.Contains(events(t, f, "db"), `Warning SecretDrift Secret app/db was changed by "kubectl-edit" (update); restored from the SealedSecret`)
		})

		// A deleted managed Secret comes back.
		if err := secretsAPI.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the Secret to be recreated", func() bool {
			s, err := secretsAPI.Get(ctx, "db", metav1.GetOptions{})
			return err == nil && s.DeletionTimestamp == nil && string(s.Data["password"]) == canary+"-db"
		})
	})

	t.Run("refuses an unmanaged Secret, takes over a managed one", func(t *testing.T) {
		if _, err := secretsAPI.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken"}, StringData: map[string]string{"password": "hand-made"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.create(t, sealFor(t, f.pub, "taken", canary+"-taken"))
		poll(t, "Synced=False ErrUnmanagedSecret", func() bool { st, r, _ := condition(t, f, "taken"); return st == "False" && r == "ErrUnmanagedSecret" })
		poll(t, "the warning event", func() bool { return strings.Contains(events(t, f, "taken"), "Warning ErrUnmanagedSecret") })
		s, _ := secretsAPI.Get(ctx, "taken", metav1.GetOptions{})
		if string(s.Data["password"]) != "hand-made" {
			t.Fatal("an unmanaged Secret was overwritten")
		}
		s.Annotations = map[string]string{sealedsecrets.AnnotationManaged: "true"}
		if _, err := secretsAPI.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Touch the SealedSecret so it is reconciled again.
		touch := []byte(`{"metadata":{"labels":{"touched":"1"}}}`)
		if _, err := f.dyn.Resource(sealedsecrets.SealedSecretGVR).Namespace("app").Patch(ctx, "taken", types.MergePatchType, touch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the takeover", func() bool {
			s, err := secretsAPI.Get(ctx, "taken", metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == canary+"-taken" && len(s.OwnerReferences) == 1
		})
	})

	t.Run("patch merges into an existing Secret", func(t *testing.T) {
		if _, err := secretsAPI.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "patched", Annotations: map[string]string{sealedsecrets.AnnotationPatch: "true"}},
			StringData: map[string]string{"other": "kept"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.create(t, sealFor(t, f.pub, "patched", canary+"-patched"))
		poll(t, "the patch", func() bool {
			s, err := secretsAPI.Get(ctx, "patched", metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == canary+"-patched" && string(s.Data["other"]) == "kept"
		})
	})

	t.Run("a SealedSecret for another cluster fails visibly", func(t *testing.T) {
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		f.create(t, sealFor(t, &other.PublicKey, "foreign", canary+"-foreign"))
		poll(t, "Synced=False ErrUnsealFailed", func() bool { st, r, _ := condition(t, f, "foreign"); return st == "False" && r == "ErrUnsealFailed" })
		poll(t, "the warning event", func() bool { return strings.Contains(events(t, f, "foreign"), "Warning ErrUnsealFailed") })
		if _, err := secretsAPI.Get(ctx, "foreign", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a Secret was created from an undecryptable SealedSecret: %v", err)
		}
	})

	t.Run("template data renders over the unsealed values", func(t *testing.T) {
		ss := sealFor(t, f.pub, "dsn", canary+"-dsn")
		text := `postgres://shop:{{ index . "password" }}@db/shop`
		ss.Spec.Template.Data = map[string]*string{"url": &text}
		ss.Spec.Template.Metadata.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "planted", UID: "u-planted"}}
		f.create(t, ss)
		poll(t, "the templated Secret", func() bool {
			s, err := secretsAPI.Get(ctx, "dsn", metav1.GetOptions{})
			return err == nil && string(s.Data["url"]) == "postgres://shop:"+canary+"-dsn@db/shop" && string(s.Data["password"]) == canary+"-dsn" &&
				len(s.OwnerReferences) == 1 && s.OwnerReferences[0].Kind == "SealedSecret"
		})

		// A template that fails is reported by place, never with the value it choked on.
		bad := sealFor(t, f.pub, "badtmpl", canary+"-bad")
		broken := `{{ .password | mustFromJson }}`
		bad.Spec.Template.Data = map[string]*string{"cfg": &broken}
		f.create(t, bad)
		poll(t, "Synced=False ErrUnsealFailed", func() bool { st, r, _ := condition(t, f, "badtmpl"); return st == "False" && r == "ErrUnsealFailed" })
		poll(t, "the warning event", func() bool {
			return strings.Contains(events(t, f, "badtmpl"), `template.data "cfg" cannot be rendered`)
		})
		if _, err := secretsAPI.Get(ctx, "badtmpl", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a Secret was created from a failing template: %v", err)
		}
	})

	t.Run("hostile templates stop on their budget; a valid SealedSecret behind ten of them is unsealed within 5 s", func(t *testing.T) {
		bombs := []string{
			`{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}{{end}}`,
			`{{indent 1500000000 ""}}`,
		}
		for i := range 10 {
			ss := sealFor(t, f.pub, fmt.Sprintf("bomb-%d", i), canary+"-bomb")
			ss.Spec.Template.Data = map[string]*string{"x": &bombs[i%2]}
			f.create(t, ss)
		}
		start := time.Now()
		f.create(t, sealFor(t, f.pub, "calm", canary+"-calm"))
		poll(t, "the calm tenant's Secret", func() bool {
			s, err := secretsAPI.Get(ctx, "calm", metav1.GetOptions{})
			return err == nil && string(s.Data["password"]) == canary+"-calm"
		})
		t.Logf("behind 10 hostile templates: reconciled in %s", time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("a valid SealedSecret waited %s behind 10 hostile templates", took)
		}
		for i := range 10 {
			name := fmt.Sprintf("bomb-%d", i)
			poll(t, name+" refused on its budget", func() bool { return strings.Contains(events(t, f, name), "over its budget") })
		}
	})

	t.Run("verify and rotate never evaluate a template: no plaintext oracle", func(t *testing.T) {
		post := func(path string, ss *sealing.SealedSecret) int {
			body, _ := json.Marshal(ss)
			resp, err := http.Post(f.srv.URL+path, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// The question ("is the first character >= C?") and one that always fails
		// when evaluated: the answers are the same, 200, whatever the plaintext is.
		questions := []string{
			`{{ $p := index . "password" }}{{ if ge (substr 0 1 $p) "C" }}{{ index .nope 0 }}{{ end }}`,
			`{{ index .nope 0 }}`,
			`{{ .password | mustFromJson }}`,
		}
		for i, q := range questions {
			ss := sealFor(t, f.pub, "oracle", canary+"-oracle")
			ss.Spec.Template.Data = map[string]*string{"q": &q}
			time.Sleep(600 * time.Millisecond) // 2 per second per client
			if code := post("/v1/verify", ss); code != 200 {
				t.Fatalf("question %d: verify = %d, want 200 (a template was evaluated)", i, code)
			}
		}
		// The same ciphertext under another name does not open: scope is in the ciphertext.
		moved := sealFor(t, f.pub, "oracle", canary+"-oracle")
		moved.Metadata.Name = "elsewhere"
		time.Sleep(600 * time.Millisecond)
		if code := post("/v1/verify", moved); code != http.StatusConflict {
			t.Fatalf("verify under another name = %d, want 409", code)
		}
		time.Sleep(1100 * time.Millisecond) // the next test starts with a full burst
	})

	t.Run("http endpoints", func(t *testing.T) {
		post := func(path string, ss *sealing.SealedSecret) (int, []byte) {
			body, _ := json.Marshal(ss)
			resp, err := http.Post(f.srv.URL+path, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, out
		}
		good := sealFor(t, f.pub, "web", canary+"-web")
		if code, _ := post("/v1/verify", good); code != 200 {
			t.Fatalf("verify good = %d", code)
		}
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		if code, _ := post("/v1/verify", sealFor(t, &other.PublicKey, "web", "x")); code != http.StatusConflict {
			t.Fatalf("verify foreign = %d, want 409", code)
		}
		time.Sleep(1100 * time.Millisecond) // the limiter allows 2 per second
		code, body := post("/v1/rotate", good)
		if code != 200 || bytes.Contains(body, []byte(canary)) {
			t.Fatalf("rotate = %d %s", code, body)
		}
		// Bursts are refused.
		codes := map[int]int{}
		for range 5 {
			c, _ := post("/v1/verify", good)
			codes[c]++
		}
		if codes[http.StatusTooManyRequests] == 0 {
			t.Fatalf("no request was rate limited: %v", codes)
		}
		resp, err := http.Get(f.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`keyway_unseal_requests_total{result="created"}`, `keyway_unseal_errors_total{reason="ErrUnsealFailed"}`, "keyway_unseal_rsa_decryptions_total"} {
			if !bytes.Contains(metrics, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestKeyRenewal: with a short renewal period the unsealer adds keys on schedule and keeps
// the old ones.
func TestKeyRenewal(t *testing.T) {
	ctx := t.Context()
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "renew"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	u, _ := runUnsealer(t, env.Config, sealedsecrets.Options{Namespace: "renew", KeyBits: 1024, KeyRenewPeriod: 2 * time.Second})
	poll(t, "three keys", func() bool {
		keys, err := u.Keys()
		return err == nil && len(keys) >= 3
	})
}

// TestResyncWritesNothing: once every Secret matches its SealedSecret, resyncs read caches
// and write nothing — no Secret update, no event, no status — however often they run.
func TestResyncWritesNothing(t *testing.T) {
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(env.Config)
	adminDyn := dynamic.NewForConfigOrDie(env.Config)
	crd, err := os.ReadFile("../../examples/sealedsecret/crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, crd); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"resync-keys", "resync"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	testStart := time.Now()
	// The unsealer's own user agent: the audit log tells its requests from the test's.
	const agent = "keyway-unsealer-resync-test"
	cfg := kube.WithLimits(env.Config, 1000, 2000, agent)
	writes := func(since time.Time) []testenv.Request {
		t.Helper()
		reqs, err := env.Requests(since, agent)
		if err != nil {
			t.Fatal(err)
		}
		var w []testenv.Request
		for _, r := range reqs {
			if r.IsWrite() {
				w = append(w, r)
			}
		}
		return w
	}
	reg := prometheus.NewRegistry()
	u, stop := runUnsealer(t, cfg, sealedsecrets.Options{Namespace: "resync-keys", KeyBits: 2048, ResyncPeriod: time.Second, Registry: reg})
	var ring []*sealing.Key
	poll(t, "the first key", func() bool { ring, err = u.Keys(); return err == nil && len(ring) > 0 })

	const n = 20
	if err := createSealed(ctx, adminDyn, &ring[0].Private.PublicKey, n, func(i int) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%02d", i), Namespace: "resync"}, StringData: map[string]string{"password": canary}}
	}); err != nil {
		t.Fatal(err)
	}
	poll(t, "every SealedSecret Synced=True", func() bool {
		list, err := adminDyn.Resource(sealedsecrets.SealedSecretGVR).Namespace("resync").List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != n {
			return false
		}
		for i := range list.Items {
			conds, _, _ := unstructured.NestedSlice(list.Items[i].Object, "status", "conditions")
			if len(conds) == 0 || conds[0].(map[string]any)["status"] != "True" {
				return false
			}
		}
		return true
	})
	// The audit log sees the unsealer's writes (so the zero below can fail): n Secrets
	// created, n statuses set.
	created := 0
	for _, r := range writes(testStart) {
		if r.Verb == "create" && r.Resource == "secrets" && r.Namespace == "resync" {
			created++
		}
	}
	if created != n {
		t.Fatalf("the audit log shows %d Secrets created by the unsealer, want %d", created, n)
	}
	// Let the last writes' echoes (status updates come back as watch events) settle.
	for quiet := time.Now(); ; {
		time.Sleep(1500 * time.Millisecond)
		if len(writes(quiet)) == 0 {
			break
		}
		quiet = time.Now()
	}
	start, unchangedBefore := time.Now(), counter(t, reg, "unchanged")
	time.Sleep(3500 * time.Millisecond) // three resync periods
	w, unchangedAfter := writes(start), counter(t, reg, "unchanged")
	all, _ := env.Requests(start, agent)
	t.Logf("API server, over 3.5 s of 1 s resyncs: %d requests from the unsealer, %d writes; %d reconciles found nothing to do", len(all), len(w), int(unchangedAfter-unchangedBefore))
	if unchangedAfter-unchangedBefore < 2*n {
		t.Fatalf("only %v unchanged reconciles in three resync periods: the resync did not run", unchangedAfter-unchangedBefore)
	}
	if len(w) != 0 {
		t.Fatalf("%d write requests during resyncs with nothing changed, want 0: first %+v", len(w), w[0])
	}

	// A restart (a new leader): the new process has never seen these settled, and the
	// Secrets' proofs spare it every decryption and every write.
	stop()
	time.Sleep(500 * time.Millisecond)
	// SealedSecrets other tests left behind are sealed for other rings: the new unsealer
	// would try (and count) decryptions of them. They go first (tests run one at a time).
	others, err := adminDyn.Resource(sealedsecrets.SealedSecretGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range others.Items {
		if o.GetNamespace() != "resync" {
			if err := adminDyn.Resource(sealedsecrets.SealedSecretGVR).Namespace(o.GetNamespace()).Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}
	reg2 := prometheus.NewRegistry()
	restart := time.Now()
	runUnsealer(t, cfg, sealedsecrets.Options{Namespace: "resync-keys", KeyBits: 2048, ResyncPeriod: time.Hour, Registry: reg2})
	poll(t, "the restarted unsealer's first pass", func() bool { return counter(t, reg2, "unchanged") >= n })
	if d := testenv.MetricTotal(reg2, "keyway_unseal_rsa_decryptions_total"); d != 0 {
		t.Fatalf("the restarted unsealer decrypted %v values of settled SealedSecrets, want 0", d)
	}
	if w := writes(restart); len(w) != 0 {
		t.Fatalf("the restarted unsealer wrote %d times over settled SealedSecrets: first %+v", len(w), w[0])
	}
	// A hand edit is still found (the proof no longer holds) and undone.
	if _, err := admin.CoreV1().Secrets("resync").Patch(ctx, "s00", types.MergePatchType, []byte(`{"data":{"password":"aGFuZC1lZGl0"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the hand edit undone after the restart", func() bool {
		s, err := admin.CoreV1().Secrets("resync").Get(ctx, "s00", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == canary
	})
	if d := testenv.MetricTotal(reg2, "keyway_unseal_rsa_decryptions_total"); d < 1 {
		t.Fatalf("the hand edit was undone without a decryption (%v)", d)
	}
}

func counter(_ testing.TB, reg *prometheus.Registry, result string) float64 {
	return testenv.MetricValue(reg, "keyway_unseal_requests_total", result)
}

// metricValue reads a counter's value for one "result" label.
// TestAPIServerOutage: with the API server gone longer than the lease's renew deadline the
// leader gives up (Lead returns ErrLostLeadership: the process exits and is restarted);
// nothing unsealed before is lost, and a restarted controller leads again and unseals new
// work once the API server is back.
func TestAPIServerOutage(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	lease := kube.LeaseOptions{Namespace: "keyway-system", Name: "outage-test", LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
	var led atomic.Value // time.Time the current leader started leading
	startLeader := func() (<-chan error, context.CancelFunc) {
		cfg := kube.WithLimits(env.Config, kube.DefaultQPS, kube.DefaultBurst, "keyway-unsealer-outage-test")
		u := sealedsecrets.New(kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg), sealedsecrets.Options{Namespace: "keyway-system", KeyBits: 2048})
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			if err := u.Start(runCtx); err != nil {
				done <- err
				return
			}
			done <- kube.Lead(runCtx, env.Config, lease, func(ctx context.Context) { led.Store(time.Now()); _ = u.Run(ctx) })
		}()
		return done, cancel
	}
	// setup's unsealer runs without election; stop it so only the leader unseals.
	f.stop()
	done, cancel := startLeader()
	defer cancel()
	secretsAPI := f.kube.CoreV1().Secrets("app")
	f.create(t, sealFor(t, f.pub, "before-outage", canary+"-before"))
	poll(t, "the Secret unsealed before the outage", func() bool {
		s, err := secretsAPI.Get(ctx, "before-outage", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == canary+"-before"
	})

	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, kube.ErrLostLeadership) {
			t.Fatalf("Lead returned %v, want ErrLostLeadership", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the leader kept leading without an API server")
	}
	cancel()
	time.Sleep(*outage) // how long the API server stays down (go test -outage 60s)
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	led.Store(time.Time{})
	// The restarted controller (a new process in production) leads and unseals new work.
	done, cancel2 := startLeader()
	defer cancel2()
	f.create(t, sealFor(t, f.pub, "after-outage", canary+"-after"))
	poll(t, "new work unsealed after the outage", func() bool {
		s, err := secretsAPI.Get(ctx, "after-outage", metav1.GetOptions{})
		return err == nil && string(s.Data["password"]) == canary+"-after"
	})
	if since, ok := led.Load().(time.Time); ok && !since.IsZero() {
		t.Logf("API server down %s after the leader gave up; new work unsealed %.2f s after the restarted controller began leading", *outage, time.Since(since).Seconds())
	}
	if s, err := secretsAPI.Get(ctx, "before-outage", metav1.GetOptions{}); err != nil || string(s.Data["password"]) != canary+"-before" {
		t.Fatalf("the Secret unsealed before the outage was lost: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the restarted leader stopped: %v", err)
	default:
	}
}

// TestFirstListInPages: where the API server cannot stream the first list (this test
// environment's etcd lacks watch progress requests), the unsealer lists SealedSecrets in
// pages of 500 and turns each into cache entries before the next, instead of one list of
// everything decoded at once; every SealedSecret is unsealed all the same.
func TestFirstListInPages(t *testing.T) {
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(env.Config)
	adminDyn := dynamic.NewForConfigOrDie(env.Config)
	for _, ns := range []string{"pages-keys", "pages"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	crd, err := os.ReadFile("../../examples/sealedsecret/crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, crd); err != nil {
		t.Fatal(err)
	}
	key, err := sealing.Ring{Client: admin, Namespace: "pages-keys"}.Generate(ctx, 2048)
	if err != nil {
		t.Fatal(err)
	}
	res := adminDyn.Resource(sealedsecrets.SealedSecretGVR).Namespace("pages")
	t.Cleanup(func() { _ = res.DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{}) })
	const n = 510
	if err := createSealed(ctx, adminDyn, &key.Private.PublicKey, n, func(i int) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%03d", i), Namespace: "pages"}, StringData: map[string]string{"v": fmt.Sprint(i)}}
	}); err != nil {
		t.Fatal(err)
	}

	const agent = "keyway-unsealer-pages-test"
	cfg := kube.WithLimits(env.Config, 1000, 2000, agent)
	reg := prometheus.NewRegistry()
	start := time.Now()
	runUnsealer(t, cfg, sealedsecrets.Options{Namespace: "pages-keys", KeyBits: 2048, Registry: reg})
	poll(t, "every SealedSecret unsealed", func() bool { return counter(t, reg, "created") >= n })
	list, err := admin.CoreV1().Secrets("pages").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for _, s := range list.Items {
		var i int
		if _, err := fmt.Sscanf(s.Name, "p%03d", &i); err == nil && string(s.Data["v"]) == fmt.Sprint(i) {
			right++
		}
	}
	if right != n {
		t.Fatalf("%d of %d Secrets hold their value", right, n)
	}
	reqs, err := env.Requests(start, agent)
	if err != nil {
		t.Fatal(err)
	}
	var pages, secretPages []string
	for _, r := range reqs {
		switch {
		case r.Verb == "list" && r.Resource == "sealedsecrets":
			pages = append(pages, r.URI)
		case r.Verb == "list" && r.Resource == "secrets":
			secretPages = append(secretPages, r.URI)
		}
	}
	if len(pages) < 2 || !strings.Contains(pages[0], "limit=500") || strings.Contains(pages[0], "resourceVersion=0") || !strings.Contains(pages[1], "continue=") {
		t.Fatalf("the first list was not paged: %q", pages)
	}
	if len(secretPages) < 1 || !strings.Contains(secretPages[0], "limit=500") || strings.Contains(secretPages[0], "resourceVersion=0") {
		t.Fatalf("the Secrets were not listed in pages: %q", secretPages)
	}
	t.Logf("%d SealedSecrets listed in %d pages: %q", n, len(pages), pages)
}
