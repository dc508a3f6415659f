package externalsecrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/providers/providertest/awsfake"
	"github.com/keyway-dev/keyway/providers/providertest/gcpfake"
	"github.com/keyway-dev/keyway/sync/api/crds"
	"github.com/keyway-dev/keyway/sync/externalsecrets"
)

const syncCanary = "CANARY-syncer"

// syncerFixture: keyway's CRDs, a real Vault holding secret/data/database/credentials, a
// running Syncer, and helpers to apply manifests.
type syncerFixture struct {
	aws       *awsfake.Server
	gcp       *gcpfake.Server
	proxy     *httptest.Server // to Vault, taken down by setting proxyDown
	proxyDown atomic.Bool
	proxyHang atomic.Bool   // accept and never answer (until the test ends)
	unhang    chan struct{} // closed when the fixture ends

	limitedMu    sync.Mutex
	limitedReads []time.Time // when the proxy forwarded reads of secret/limited/*
	kube         kubernetes.Interface
	dyn          dynamic.Interface
	reg          *prometheus.Registry
	logs         *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSyncerFixture(t *testing.T) (*syncerFixture, string, string) {
	t.Helper()
	ctx := t.Context()
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, all); err != nil {
		t.Fatal(err)
	}
	v, err := env.StartVault(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Stop() })
	if _, err := v.Root.Logical().WriteWithContext(ctx, "secret/data/database/credentials", map[string]any{"data": map[string]any{"password": syncCanary + "-pw", "user": "admin", "config": map[string]any{"port": "5432"}}}); err != nil {
		t.Fatal(err)
	}
	f := &syncerFixture{kube: kubernetes.NewForConfigOrDie(env.Config), dyn: dynamic.NewForConfigOrDie(env.Config), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	aws := awsfake.New()
	t.Cleanup(aws.Close)
	aws.Put("prod/db", `{"password": "`+syncCanary+`-aws"}`)
	f.aws = aws
	// STS checks web identity tokens with the API server, as AWS checks them with the
	// cluster's OIDC keys.
	aws.SetWebIdentityVerifier(func(tok string) (string, error) {
		tr, err := f.kube.AuthenticationV1().TokenReviews().Create(context.Background(), &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: tok, Audiences: []string{"sts.amazonaws.com"}}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated {
			return "", fmt.Errorf("token refused")
		}
		return tr.Status.User.Username, nil
	})
	gcp, err := gcpfake.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcp.Close)
	gcp.Add("projects/shop-prod/secrets/db", []byte(`{"password": "`+syncCanary+`-gcp"}`))
	f.gcp = gcp
	// A way to Vault that a test can take down (the outage test), allowed like Vault itself.
	target, _ := url.Parse(v.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	f.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/secret/data/limited/") {
			f.limitedMu.Lock()
			f.limitedReads = append(f.limitedReads, time.Now())
			f.limitedMu.Unlock()
		}
		if f.proxyDown.Load() {
			http.Error(w, "upstream gone", http.StatusBadGateway)
			return
		}
		if f.proxyHang.Load() {
			select {
			case <-r.Context().Done():
			case <-f.unhang:
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.proxy.Close)
	f.unhang = make(chan struct{})
	t.Cleanup(func() { close(f.unhang) }) // before the proxy closes: its handlers return
	s, err := externalsecrets.NewSyncer(env.Config, externalsecrets.SyncerOptions{AWSEndpoint: aws.URL, GCPEndpoint: gcp.Addr, GCPCAFile: gcp.CAFile, GCPTokenURL: gcp.TokenURL,
		VaultServers: []string{v.Addr, f.proxy.URL}, Registry: f.reg, Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = s.Run(runCtx) }()
	return f, v.Addr, v.RootToken
}

func (f *syncerFixture) namespace(t *testing.T, ns string) {
	t.Helper()
	if _, err := f.kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// apply creates a manifest as written (any version the CRDs serve).
func (f *syncerFixture) apply(t *testing.T, manifest string) {
	t.Helper()
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatal(err)
	}
	gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
	res := strings.ToLower(obj.GetKind()) + "s"
	if _, err := f.dyn.Resource(gv.WithResource(res)).Namespace(obj.GetNamespace()).Create(t.Context(), &obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// forceSync sets the force-sync annotation to a new value each time (a number: taken as a
// time, one ahead of now counts as now), as `kubectl annotate es NAME force-sync=$(date +%s)
// --overwrite` does.
func (f *syncerFixture) forceSync(t *testing.T, ns, name string) {
	t.Helper()
	// A merge patch, as kubectl annotate sends: no resourceVersion, so the syncer's own
	// status writes in the meantime cannot make it conflict.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"force-sync":"%d"}}}`, time.Now().UnixNano())
	if _, err := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace(ns).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *syncerFixture) reads() float64 {
	return testenv.MetricTotal(f.reg, "keyway_syncer_backend_reads_total")
}

// ready returns the ExternalSecret's Ready condition status and reason, checking it holds
// no secret value.
func (f *syncerFixture) ready(t *testing.T, ns, name string) (string, string) {
	t.Helper()
	status, reason, _ := f.condition(t, ns, name)
	return status, reason
}

// condition is the Ready condition's status, reason and message.
func (f *syncerFixture) condition(t *testing.T, ns, name string) (string, string, string) {
	t.Helper()
	u, err := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "", "", ""
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if msg, _ := m["message"].(string); strings.Contains(msg, syncCanary) {
			t.Fatalf("status leaks a value: %v", m)
		}
		if m["type"] == "Ready" {
			msg, _ := m["message"].(string)
			return m["status"].(string), m["reason"].(string), msg
		}
	}
	return "", "", ""
}

func (f *syncerFixture) secretValue(t *testing.T, ns, name, key string) (string, bool) {
	s, err := f.kube.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	v, ok := s.Data[key]
	return string(v), ok
}

func storeManifest(ns, name, addr, tokenSecret string) string {
	return fmt.Sprintf(`apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: %s
  namespace: %s
spec:
  provider:
    vault:
      server: %q
      path: secret
      version: v2
      auth:
        tokenSecretRef:
          name: %s
          key: token
`, name, ns, addr, tokenSecret)
}

// seedGuideES is the guide's ExternalSecret, verbatim but for the namespace.
func seedGuideES(ns string) string {
	return fmt.Sprintf(`apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: database-credentials
  namespace: %s
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: vault-backend
    kind: SecretStore
  target:
    name: database-credentials
  data:
  - secretKey: password
    remoteRef:
      key: database/credentials
      property: password
`, ns)
}

func TestSyncer(t *testing.T) {
	f, addr, token := newSyncerFixture(t)
	ctx := t.Context()
	tokenSecret := func(ns, name, tok string) {
		if _, err := f.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: map[string]string{"token": tok}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the guide's manifests sync", func(t *testing.T) {
		f.namespace(t, "shop")
		tokenSecret("shop", "vault-token", token)
		f.apply(t, storeManifest("shop", "vault-backend", addr, "vault-token"))
		f.apply(t, seedGuideES("shop"))
		poll(t, "the target Secret", func() bool {
			v, _ := f.secretValue(t, "shop", "database-credentials", "password")
			return v == syncCanary+"-pw"
		})
		poll(t, "Ready=True SecretSynced", func() bool {
			st, r := f.ready(t, "shop", "database-credentials")
			return st == "True" && r == "SecretSynced"
		})
		s, _ := f.kube.CoreV1().Secrets("shop").Get(ctx, "database-credentials", metav1.GetOptions{})
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "ExternalSecret" || len(s.Data) != 1 {
			t.Fatalf("target = %+v", s.ObjectMeta)
		}
		// ESO's event and bookkeeping, for dashboards and kubectl describe.
		if s.Labels["reconcile.external-secrets.io/managed"] != "true" || s.Annotations["reconcile.external-secrets.io/data-hash"] == "" {
			t.Fatalf("target bookkeeping: labels %v annotations %v", s.Labels, s.Annotations)
		}
		poll(t, "a Created event on the ExternalSecret", func() bool {
			events, _ := f.kube.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=database-credentials,reason=Created"})
			return events != nil && len(events.Items) > 0 && events.Items[0].Message == "secret created"
		})
	})

	t.Run("one read per secret and principal, shared across ExternalSecrets and namespaces", func(t *testing.T) {
		before := f.reads()
		for i := range 10 {
			ns := fmt.Sprintf("team-%d", i)
			f.namespace(t, ns)
			tokenSecret(ns, "vault-token", token) // the same credentials: the same principal
			f.apply(t, storeManifest(ns, "vault-backend", addr, "vault-token"))
			f.apply(t, seedGuideES(ns))
		}
		for i := range 10 {
			ns := fmt.Sprintf("team-%d", i)
			poll(t, "the target in "+ns, func() bool {
				v, _ := f.secretValue(t, ns, "database-credentials", "password")
				return v == syncCanary+"-pw"
			})
		}
		if n := f.reads() - before; n != 0 {
			t.Fatalf("10 more ExternalSecrets over the same secret and credentials made %v backend reads, want 0 (read once already)", n)
		}
		if hits := testenv.MetricTotal(f.reg, "keyway_syncer_cache_hits_total"); hits < 10 {
			t.Fatalf("cache hits = %v, want at least the 10 shared reads", hits)
		}
	})

	t.Run("drift is repaired without a backend call", func(t *testing.T) {
		since := time.Now()
		before := f.reads()
		s, _ := f.kube.CoreV1().Secrets("shop").Get(ctx, "database-credentials", metav1.GetOptions{})
		s.Data["password"] = []byte("hand-edited")
		if _, err := f.kube.CoreV1().Secrets("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the edit undone", func() bool {
			v, _ := f.secretValue(t, "shop", "database-credentials", "password")
			return v == syncCanary+"-pw"
		})
		if err := f.kube.CoreV1().Secrets("shop").Delete(ctx, "database-credentials", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the Secret recreated", func() bool {
			v, _ := f.secretValue(t, "shop", "database-credentials", "password")
			return v == syncCanary+"-pw"
		})
		if n := f.reads() - before; n != 0 {
			t.Fatalf("drift repair made %v backend reads, want 0", n)
		}
		// Nor a status write: the ExternalSecret's refresh is not due.
		reqs, err := env.Requests(since, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			if r.Resource == "externalsecrets/status" && r.Namespace == "shop" && r.Name == "database-credentials" {
				t.Fatalf("drift repair rewrote the ExternalSecret's status: %+v", r)
			}
		}
	})

	t.Run("templates, dataFrom and rewrite", func(t *testing.T) {
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: templated, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  target:
    name: dsn
    template:
      type: kubernetes.io/basic-auth
      metadata: {labels: {app: shop}}
      data:
        username: '{{ .user }}'
        password: '{{ .password }}'
        url: 'postgres://{{ .user }}:{{ .password }}@db:{{ .config_port }}/shop'
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
  - {secretKey: user, remoteRef: {key: database/credentials, property: user}}
  - {secretKey: config_port, remoteRef: {key: database/credentials, property: config.port}}
---
`)
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: extracted, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  dataFrom:
  - extract: {key: database/credentials}
    rewrite: [{regexp: {source: "^(.*)$", target: "db_$1"}}]
`)
		t.Cleanup(func() {
			if t.Failed() {
				u, _ := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace("shop").Get(context.Background(), "templated", metav1.GetOptions{})
				t.Logf("templated: %v\nlogs:\n%s", u.Object["status"], f.logs.String())
			}
		})
		poll(t, "the templated Secret", func() bool {
			v, _ := f.secretValue(t, "shop", "dsn", "url")
			return v == "postgres://admin:"+syncCanary+"-pw@db:5432/shop"
		})
		s, _ := f.kube.CoreV1().Secrets("shop").Get(ctx, "dsn", metav1.GetOptions{})
		if s.Type != corev1.SecretTypeBasicAuth || s.Labels["app"] != "shop" || len(s.Data) != 3 {
			t.Fatalf("templated Secret: type %s labels %v keys %d", s.Type, s.Labels, len(s.Data))
		}
		poll(t, "the extracted Secret", func() bool {
			v, _ := f.secretValue(t, "shop", "extracted", "db_password")
			u, _ := f.secretValue(t, "shop", "extracted", "db_user")
			return v == syncCanary+"-pw" && u == "admin"
		})
		// metadataPolicy Fetch: KV v2's custom_metadata, not the values; a transform rewrite.
		if _, err := vaultRoot(t, addr, token).Logical().WriteWithContext(ctx, "secret/metadata/database/credentials",
			map[string]any{"custom_metadata": map[string]any{"owner": "team-shop", "tier": "gold"}}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: metadata, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  data:
  - {secretKey: owner, remoteRef: {key: database/credentials, metadataPolicy: Fetch, property: owner}}
  dataFrom:
  - extract: {key: database/credentials, metadataPolicy: Fetch}
    rewrite: [{transform: {template: "meta_{{ .value }}"}}]
`)
		poll(t, "the custom metadata in the Secret", func() bool {
			o, _ := f.secretValue(t, "shop", "metadata", "owner")
			m, _ := f.secretValue(t, "shop", "metadata", "meta_tier")
			return o == "team-shop" && m == "gold"
		})
		if s, _ := f.kube.CoreV1().Secrets("shop").Get(ctx, "metadata", metav1.GetOptions{}); len(s.Data) != 3 {
			t.Fatalf("metadata Secret keys: %v", s.Data)
		}
	})

	t.Run("a ClusterExternalSecret makes its ExternalSecret in the namespaces it selects", func(t *testing.T) {
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: ces-fake}
spec:
  provider:
    fake:
      data:
      - {key: shared/config, value: '{"mode": "ces"}'}
`)
		label := func(ns, team string) {
			t.Helper()
			patch := `{"metadata":{"labels":{"team":null}}}`
			if team != "" {
				patch = `{"metadata":{"labels":{"team":"` + team + `"}}}`
			}
			if _, err := f.kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, ns := range []string{"ces-a", "ces-b", "ces-c", "ces-d"} {
			f.namespace(t, ns)
		}
		label("ces-a", "x")
		label("ces-b", "x")
		// ces-d holds an ExternalSecret of that name the ClusterExternalSecret did not make.
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: shared-config, namespace: ces-d}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: ces-fake}
  target: {name: own}
  dataFrom: [{extract: {key: shared/config}}]
`)
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {name: shared}
spec:
  externalSecretName: shared-config
  externalSecretMetadata: {labels: {made-by: ces}}
  namespaceSelectors: [{matchLabels: {team: x}}]
  namespaces: [ces-d]
  refreshTime: 1m
  externalSecretSpec:
    secretStoreRef: {kind: ClusterSecretStore, name: ces-fake}
    target: {name: shared-config}
    dataFrom: [{extract: {key: shared/config}}]
`)
		has := func(ns string) bool { v, _ := f.secretValue(t, ns, "shared-config", "mode"); return v == "ces" }
		esExists := func(ns string) bool {
			_, err := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace(ns).Get(ctx, "shared-config", metav1.GetOptions{})
			return err == nil
		}
		poll(t, "the Secrets in the selected namespaces", func() bool { return has("ces-a") && has("ces-b") })
		status := func() map[string]any {
			u, err := f.dyn.Resource(externalsecrets.ClusterExternalSecretGVR).Get(ctx, "shared", metav1.GetOptions{})
			if err != nil {
				return nil
			}
			st, _ := u.Object["status"].(map[string]any)
			return st
		}
		poll(t, "the status: provisioned, failed and not Ready", func() bool {
			st := status()
			b, _ := json.Marshal(st)
			return strings.Contains(string(b), `"provisionedNamespaces":["ces-a","ces-b"]`) &&
				strings.Contains(string(b), `{"namespace":"ces-d","reason":"external secret already exists in namespace"}`) &&
				strings.Contains(string(b), `"status":"False"`)
		})
		if has("ces-c") {
			t.Fatal("an unselected namespace got the Secret")
		}
		es, _ := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace("ces-a").Get(ctx, "shared-config", metav1.GetOptions{})
		if es.GetLabels()["made-by"] != "ces" {
			t.Fatalf("the made ExternalSecret's labels: %v", es.GetLabels())
		}
		// Looked at again with nothing changed (another namespace labelled): no write to the
		// ExternalSecrets it made, nor to its status.
		quiet := time.Now()
		f.namespace(t, "ces-unrelated")
		label("ces-unrelated", "other")
		time.Sleep(time.Second)
		reqs, err := env.Requests(quiet, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			if r.IsWrite() && (r.Resource == "externalsecrets" && r.Name == "shared-config" || strings.HasPrefix(r.Resource, "clusterexternalsecrets")) {
				t.Errorf("a write with nothing changed: %s %s %s/%s", r.Verb, r.Resource, r.Namespace, r.Name)
			}
		}
		label("ces-c", "x")
		poll(t, "a namespace labelled later gets it", func() bool { return has("ces-c") })
		label("ces-a", "")
		poll(t, "a namespace no longer selected loses it", func() bool { return !esExists("ces-a") })
		if err := f.dyn.Resource(externalsecrets.ClusterExternalSecretGVR).Delete(ctx, "shared", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the ClusterExternalSecret's ExternalSecrets gone with it", func() bool { return !esExists("ces-b") && !esExists("ces-c") })
		if !esExists("ces-d") {
			t.Fatal("the ExternalSecret the ClusterExternalSecret did not make was deleted")
		}
	})

	t.Run("dataFrom.find lists Vault: every secret under a path whose name matches", func(t *testing.T) {
		root := vaultRoot(t, addr, token)
		for path, v := range map[string]string{"team/api": "a", "team/sub/worker": "w", "team/skip-me": "s", "other/db": "o"} {
			if _, err := root.Logical().WriteWithContext(ctx, "secret/data/"+path, map[string]any{"data": map[string]any{"k": syncCanary + "-" + v}}); err != nil {
				t.Fatal(err)
			}
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: found, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  dataFrom:
  - find: {path: team, name: {regexp: '^team/(api|sub/)'}}
    rewrite: [{regexp: {source: '^team_', target: ''}}]
`)
		poll(t, "the found secrets", func() bool {
			a, _ := f.secretValue(t, "shop", "found", "api")
			w, _ := f.secretValue(t, "shop", "found", "sub_worker")
			return a == `{"k":"`+syncCanary+`-a"}` && w == `{"k":"`+syncCanary+`-w"}`
		})
		s, _ := f.kube.CoreV1().Secrets("shop").Get(ctx, "found", metav1.GetOptions{})
		if len(s.Data) != 2 {
			t.Fatalf("find selected %d keys, want 2 (skip-me and other/db excluded)", len(s.Data))
		}
	})

	t.Run("templateFrom: ConfigMap items, KeysAndValues and a literal", func(t *testing.T) {
		if _, err := f.kube.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tpl"}, Data: map[string]string{
			"config.yaml": "db:\n  user: {{ .user }}\n  password: {{ .password }}\n",
			"env":         "DB_USER: '{{ .user }}'\nDB_PASS: '{{ .password }}'\n",
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: from-templates, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  target:
    template:
      templateFrom:
      - configMap:
          name: tpl
          items:
          - {key: config.yaml}
          - {key: env, templateAs: KeysAndValues}
      - target: Annotations
        literal: "owner: '{{ .user }}'"
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
  - {secretKey: user, remoteRef: {key: database/credentials, property: user}}
`)
		poll(t, "the Secret from templateFrom", func() bool {
			s, err := f.kube.CoreV1().Secrets("shop").Get(ctx, "from-templates", metav1.GetOptions{})
			return err == nil && string(s.Data["config.yaml"]) == "db:\n  user: admin\n  password: "+syncCanary+"-pw\n" &&
				string(s.Data["DB_USER"]) == "admin" && string(s.Data["DB_PASS"]) == syncCanary+"-pw" && s.Annotations["owner"] == "admin"
		})
	})

	t.Run("a ClusterSecretStore serves the namespaces its conditions admit", func(t *testing.T) {
		f.namespace(t, "vault-creds")
		tokenSecret("vault-creds", "vault-token", token)
		f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: shared}
spec:
  conditions:
  - namespaces: [team-0]
  - namespaceRegexes: ["^app-.*", "team-b"]
  provider:
    vault:
      server: %q
      path: secret
      version: v2
      auth: {tokenSecretRef: {name: vault-token, key: token, namespace: vault-creds}}
`, addr))
		es := func(ns string) string {
			return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: from-cluster-store, namespace: %s}
spec:
  secretStoreRef: {name: shared, kind: ClusterSecretStore}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`, ns)
		}
		f.namespace(t, "app-x")
		f.namespace(t, "team-b-evil") // regexes match whole names: "team-b" does not admit it
		for _, ns := range []string{"team-0", "app-x", "shop", "team-b-evil"} {
			f.apply(t, es(ns))
		}
		for _, ns := range []string{"team-0", "app-x"} {
			poll(t, "the Secret in "+ns, func() bool {
				v, _ := f.secretValue(t, ns, "from-cluster-store", "password")
				return v == syncCanary+"-pw"
			})
		}
		for _, ns := range []string{"shop", "team-b-evil"} {
			poll(t, "the refusal in "+ns, func() bool {
				st, r := f.ready(t, ns, "from-cluster-store")
				return st == "False" && r == "SecretSyncedError"
			})
			if _, ok := f.secretValue(t, ns, "from-cluster-store", "password"); ok {
				t.Fatalf("namespace %s, which the conditions do not admit, got the value", ns)
			}
		}
	})

	t.Run("Vault kubernetes auth with a requested service-account token", func(t *testing.T) {
		f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault-k8s, namespace: default}
spec:
  provider:
    vault:
      server: %q
      path: secret
      version: v2
      auth:
        kubernetes:
          mountPath: kubernetes
          role: keyway
          serviceAccountRef: {name: keyway}
`, addr))
		for _, name := range []string{"k8s-auth-1", "k8s-auth-2"} {
			f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: %s, namespace: default}
spec:
  secretStoreRef: {name: vault-k8s}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`, name))
		}
		for _, name := range []string{"k8s-auth-1", "k8s-auth-2"} {
			poll(t, "the Secret "+name, func() bool { v, _ := f.secretValue(t, "default", name, "password"); return v == syncCanary+"-pw" })
		}
		// Another namespace's service account is not the store's to use.
		f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault-k8s, namespace: shop}
spec:
  provider:
    vault:
      server: %q
      auth: {kubernetes: {mountPath: kubernetes, role: keyway, serviceAccountRef: {name: keyway, namespace: default}}}
`, addr))
		f.apply(t, strings.ReplaceAll(strings.ReplaceAll(seedGuideES("shop"), "name: vault-backend", "name: vault-k8s"), "name: database-credentials\n  namespace", "name: borrowed-sa\n  namespace"))
		poll(t, "the borrowed service account refused", func() bool {
			st, r := f.ready(t, "shop", "borrowed-sa")
			return st == "False" && r == "SecretSyncedError"
		})
	})

	t.Run("Vault userPass auth, the password from a Secret", func(t *testing.T) {
		if _, err := f.kube.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-userpass", Namespace: "default"},
			StringData: map[string]string{"password": "userpass-password"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault-userpass, namespace: default}
spec:
  provider:
    vault:
      server: %q
      auth:
        userPass: {path: userpass, username: keyway, secretRef: {name: vault-userpass, key: password}}
`, addr))
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: userpass-auth, namespace: default}
spec:
  secretStoreRef: {name: vault-userpass}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`)
		poll(t, "the Secret through userpass", func() bool {
			v, _ := f.secretValue(t, "default", "userpass-auth", "password")
			return v == syncCanary+"-pw"
		})
		poll(t, "the store Ready", func() bool { return f.storeReady(t, "default", "vault-userpass") == "True/Valid" })
	})

	t.Run("AWS Secrets Manager through the wire-level fake (SigV4 checked)", func(t *testing.T) {
		f.namespace(t, "aws")
		if _, err := f.kube.CoreV1().Secrets("aws").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "awssm-secret"},
			StringData: map[string]string{"access-key": awsfake.AccessKeyID, "secret-access-key": awsfake.SecretAccessKey}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: aws, namespace: aws}
spec:
  provider:
    aws:
      service: SecretsManager
      region: `+awsfake.Region+`
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: awssm-secret, key: access-key}
          secretAccessKeySecretRef: {name: awssm-secret, key: secret-access-key}
`)
		f.apply(t, `apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: db, namespace: aws}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: aws, kind: SecretStore}
  data:
  - {secretKey: password, remoteRef: {key: prod/db, property: password}}
`)
		poll(t, "the Secret from Secrets Manager", func() bool { v, _ := f.secretValue(t, "aws", "db", "password"); return v == syncCanary+"-aws" })
	})

	t.Run("AWS web identity: a service account's token for its IRSA role, through STS", func(t *testing.T) {
		const role = "arn:aws:iam::123456789012:role/irsa-reader"
		f.namespace(t, "irsa")
		f.aws.Trust(role, "system:serviceaccount:irsa:app")
		for _, sa := range []string{"app", "stranger"} { // the role trusts app only
			if _, err := f.kube.CoreV1().ServiceAccounts("irsa").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa,
				Annotations: map[string]string{"eks.amazonaws.com/role-arn": role}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: `+sa+`, namespace: irsa}
spec:
  provider:
    aws:
      service: SecretsManager
      region: `+awsfake.Region+`
      auth:
        jwt:
          serviceAccountRef: {name: `+sa+`}
`)
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: `+sa+`, namespace: irsa}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: `+sa+`}
  data:
  - {secretKey: password, remoteRef: {key: prod/db, property: password}}
`)
		}
		// dataFrom.find through the same store: a name prefix, a name pattern and a tag.
		for name, team := range map[string]string{"find/app-db": "shop", "find/app-cache": "other", "find/ops-db": "shop"} {
			f.aws.Put(name, syncCanary+"-"+name)
			f.aws.Tag(name, "team", team)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: found, namespace: irsa}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: app}
  dataFrom:
  - find:
      path: find/
      name: {regexp: "^find/app-"}
      tags: {team: shop}
`)
		poll(t, "the secrets found by path, name and tag", func() bool {
			sec, err := f.kube.CoreV1().Secrets("irsa").Get(ctx, "found", metav1.GetOptions{})
			return err == nil && len(sec.Data) == 1 && string(sec.Data["find_app-db"]) == syncCanary+"-find/app-db"
		})
		poll(t, "the Secret read as the IRSA role", func() bool { v, _ := f.secretValue(t, "irsa", "app", "password"); return v == syncCanary+"-aws" })
		if n := f.aws.CallsBy(role); n < 1 {
			t.Errorf("reads signed by %s = %d, want at least 1", role, n)
		}
		poll(t, "the untrusted account refused by STS", func() bool {
			status, reason, msg := f.condition(t, "irsa", "stranger")
			return status+"/"+reason == "False/SecretSyncedError" && strings.Contains(msg, "AccessDenied")
		})
		if _, ok := f.secretValue(t, "irsa", "stranger", "password"); ok {
			t.Error("the untrusted account's ExternalSecret made a Secret")
		}
	})

	t.Run("GCP Secret Manager with a service-account key (token exchange checked)", func(t *testing.T) {
		f.namespace(t, "gcp")
		key, err := f.gcp.ServiceAccountKey("shop@shop-prod.iam.gserviceaccount.com")
		if err != nil {
			t.Fatal(err)
		}
		var moved map[string]string
		_ = json.Unmarshal(key, &moved)
		moved["token_uri"] = "https://169.254.169.254/token"
		movedKey, _ := json.Marshal(moved)
		if _, err := f.kube.CoreV1().Secrets("gcp").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gcpsm-secret"},
			Data: map[string][]byte{"key.json": key, "moved.json": movedKey}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, st := range []struct{ name, key string }{{"gcp", "key.json"}, {"gcp-moved", "moved.json"}} {
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: `+st.name+`, namespace: gcp}
spec:
  provider:
    gcpsm:
      projectID: shop-prod
      auth:
        secretRef:
          secretAccessKeySecretRef: {name: gcpsm-secret, key: `+st.key+`}
`)
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: `+st.name+`, namespace: gcp}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: `+st.name+`, kind: SecretStore}
  data:
  - {secretKey: password, remoteRef: {key: db, property: password}}
`)
		}
		poll(t, "the Secret from Secret Manager", func() bool { v, _ := f.secretValue(t, "gcp", "gcp", "password"); return v == syncCanary+"-gcp" })
		if n := f.gcp.Calls("token"); n != 1 {
			t.Errorf("token exchanges = %d, want 1", n)
		}
		// A key that would send keyway's token request to another address is refused.
		poll(t, "the moved key refused", func() bool {
			status, reason, msg := f.condition(t, "gcp", "gcp-moved")
			return status+"/"+reason == "False/SecretSyncedError" && strings.Contains(msg, "169.254.169.254") && strings.Contains(msg, "token-url")
		})
		if _, ok := f.secretValue(t, "gcp", "gcp-moved", "password"); ok {
			t.Error("the moved key's ExternalSecret made a Secret")
		}
	})

	t.Run("refreshPolicy CreatedOnce and OnChange; Unicode key conversion", func(t *testing.T) {
		root := vaultRoot(t, addr, token)
		write := func(v string) {
			if _, err := root.Logical().WriteWithContext(ctx, "secret/data/policy/db", map[string]any{"data": map[string]any{"pw": v, "db:host": "h"}}); err != nil {
				t.Fatal(err)
			}
		}
		write("v1")
		f.namespace(t, "policy")
		tokenSecret("policy", "vault-token", token)
		f.apply(t, storeManifest("policy", "vault-backend", addr, "vault-token"))
		for _, p := range []string{"CreatedOnce", "OnChange", "Periodic"} {
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: `+strings.ToLower(p)+`, namespace: policy}
spec:
  refreshPolicy: `+p+`
  refreshInterval: 1s
  secretStoreRef: {name: vault-backend}
  dataFrom:
  - extract: {key: policy/db, conversionStrategy: Unicode}
`)
		}
		for _, name := range []string{"createdonce", "onchange", "periodic"} {
			poll(t, name+" synced", func() bool {
				v, _ := f.secretValue(t, "policy", name, "pw")
				h, _ := f.secretValue(t, "policy", name, "db_U003a_host") // ':' is not valid in a key: ESO's Unicode conversion
				return v == "v1" && h == "h"
			})
		}
		write("v2")
		poll(t, "Periodic reads v2 within its 1 s interval", func() bool { v, _ := f.secretValue(t, "policy", "periodic", "pw"); return v == "v2" })
		f.forceSync(t, "policy", "createdonce")
		time.Sleep(2 * time.Second) // two intervals, and the force-sync, for the others to (wrongly) read
		if v, _ := f.secretValue(t, "policy", "createdonce", "pw"); v != "v1" {
			t.Errorf("CreatedOnce wrote again: pw = %q", v)
		}
		if v, _ := f.secretValue(t, "policy", "onchange", "pw"); v != "v1" {
			t.Errorf("OnChange read again without a change: pw = %q", v)
		}
		// A change to OnChange's spec reads again.
		patch := []byte(`{"spec":{"target":{"template":{"metadata":{"labels":{"touched":"yes"}}}}}}`)
		if _, err := f.dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace("policy").Patch(ctx, "onchange", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		// (A template with metadata only keeps the values, as in ESO.)
		poll(t, "OnChange reads again after its spec changed", func() bool {
			sec, err := f.kube.CoreV1().Secrets("policy").Get(ctx, "onchange", metav1.GetOptions{})
			return err == nil && string(sec.Data["pw"]) == "v2" && sec.Labels["touched"] == "yes"
		})
		// CreatedOnce makes its Secret again when it is deleted.
		if err := f.kube.CoreV1().Secrets("policy").Delete(ctx, "createdonce", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "CreatedOnce recreates a deleted target", func() bool { v, _ := f.secretValue(t, "policy", "createdonce", "pw"); return v == "v2" })
	})

	t.Run("a store's read limit from its annotations", func(t *testing.T) {
		root := vaultRoot(t, addr, token)
		for i := range 5 {
			if _, err := root.Logical().WriteWithContext(ctx, fmt.Sprintf("secret/data/limited/s%d", i), map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
				t.Fatal(err)
			}
		}
		f.namespace(t, "limited")
		tokenSecret("limited", "vault-token", token)
		store := storeManifest("limited", "slow", f.proxy.URL, "vault-token")
		f.apply(t, strings.Replace(store, "  namespace: limited\n", "  namespace: limited\n  annotations: {keyway.dev/qps: \"2\", keyway.dev/burst: \"1\"}\n", 1))
		f.apply(t, strings.Replace(strings.Replace(store, "name: slow", "name: bad-limit", 1), "  namespace: limited\n", "  namespace: limited\n  annotations: {keyway.dev/qps: \"fast\"}\n", 1))
		for i := range 5 {
			f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: s%d, namespace: limited}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: slow}
  data:
  - {secretKey: k, remoteRef: {key: limited/s%d, property: k}}
`, i, i))
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: bad-limit, namespace: limited}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: bad-limit}
  data:
  - {secretKey: k, remoteRef: {key: limited/s0, property: k}}
`)
		for i := range 5 {
			poll(t, fmt.Sprintf("s%d synced", i), func() bool { v, _ := f.secretValue(t, "limited", fmt.Sprintf("s%d", i), "k"); return v == "v" })
		}
		f.limitedMu.Lock()
		reads := slices.Clone(f.limitedReads)
		f.limitedMu.Unlock()
		if len(reads) < 5 {
			t.Fatalf("%d reads of limited/* reached Vault, want 5", len(reads))
		}
		slices.SortFunc(reads, func(a, b time.Time) int { return a.Compare(b) })
		// Two a second with a burst of one: five reads span at least two seconds (a little
		// slack for the clock); without the limit they arrive together.
		if span := reads[len(reads)-1].Sub(reads[0]); span < 1900*time.Millisecond {
			t.Errorf("5 reads at keyway.dev/qps 2 took %v, want about 2s or more", span)
		}
		poll(t, "a bad annotation refused by name", func() bool {
			status, reason, msg := f.condition(t, "limited", "bad-limit")
			return status+"/"+reason == "False/SecretSyncedError" && strings.Contains(msg, "keyway.dev/qps")
		})
	})

	t.Run("closed defaults: a SecretStore names no Vault server and no ambient identity the operator did not allow", func(t *testing.T) {
		f.namespace(t, "closed")
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: elsewhere, namespace: closed}
spec:
  provider:
    vault:
      server: http://127.0.0.1:1
      path: secret
      auth: {tokenSecretRef: {name: none, key: token}}
`)
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: ambient, namespace: closed}
spec:
  provider:
    aws: {service: SecretsManager, region: `+awsfake.Region+`}
`)
		for _, c := range []struct{ store, want string }{{"elsewhere", "--allow-vault-server"}, {"ambient", "--allow-ambient-credentials"}} {
			f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: `+c.store+`, namespace: closed}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: `+c.store+`}
  data:
  - {secretKey: password, remoteRef: {key: prod/db, property: password}}
`)
			var last string
			defer func() {
				if t.Failed() {
					t.Logf("%s: last Ready message: %s", c.store, last)
				}
			}()
			poll(t, c.store+" refused naming "+c.want, func() bool {
				status, reason, msg := f.condition(t, "closed", c.store)
				last = status + "/" + reason + ": " + msg
				return status+"/"+reason == "False/SecretSyncedError" && strings.Contains(msg, c.want)
			})
		}
		// The refusals show in the metrics by kind, and the ExternalSecrets by Ready status.
		if n := testenv.MetricValue(f.reg, "keyway_syncer_sync_errors_total", "config"); n < 2 {
			t.Errorf("config errors = %v, want at least 2", n)
		}
		if n := testenv.MetricValue(f.reg, "keyway_syncer_externalsecrets", "False"); n < 2 {
			t.Errorf("ExternalSecrets Ready=False = %v, want at least 2", n)
		}
		if n := testenv.MetricValue(f.reg, "keyway_syncer_externalsecrets", "True"); n < 1 {
			t.Errorf("ExternalSecrets Ready=True = %v, want at least 1", n)
		}
	})

	t.Run("deletionPolicy Delete removes the target once the remote secret is gone", func(t *testing.T) {
		root := vaultRoot(t, addr, token)
		if _, err := root.Logical().WriteWithContext(ctx, "secret/data/ephemeral", map[string]any{"data": map[string]any{"k": "v1"}}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: ephemeral, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  target: {deletionPolicy: Delete}
  data:
  - {secretKey: k, remoteRef: {key: ephemeral, property: k}}
`)
		poll(t, "the target", func() bool { v, _ := f.secretValue(t, "shop", "ephemeral", "k"); return v == "v1" })
		if _, err := root.Logical().DeleteWithContext(ctx, "secret/metadata/ephemeral"); err != nil {
			t.Fatal(err)
		}
		f.forceSync(t, "shop", "ephemeral")
		poll(t, "the target deleted", func() bool {
			_, err := f.kube.CoreV1().Secrets("shop").Get(ctx, "ephemeral", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		poll(t, "Ready=False SecretDeleted", func() bool { st, r := f.ready(t, "shop", "ephemeral"); return st == "False" && r == "SecretDeleted" })
	})

	t.Run("backend down: the last good Secret stays, the status says why, it recovers", func(t *testing.T) {
		// The store reaches Vault through the fixture's proxy, which this test takes down.
		proxy, down := f.proxy, &f.proxyDown
		f.namespace(t, "outage")
		tokenSecret("outage", "vault-token", token)
		f.apply(t, storeManifest("outage", "vault-backend", proxy.URL, "vault-token"))
		// Another address: another principal, so this store reads for itself.
		f.apply(t, seedGuideES("outage"))
		f.apply(t, strings.ReplaceAll(seedGuideES("outage"), "database-credentials\n", "db-copy\n"))
		poll(t, "the first sync", func() bool {
			v, _ := f.secretValue(t, "outage", "database-credentials", "password")
			c, _ := f.secretValue(t, "outage", "db-copy", "password")
			return v == syncCanary+"-pw" && c == v
		})
		down.Store(true)
		defer down.Store(false) // later subtests use the proxy too
		f.forceSync(t, "outage", "database-credentials")
		poll(t, "Ready=False while Vault is down", func() bool {
			st, r := f.ready(t, "outage", "database-credentials")
			return st == "False" && r == "SecretSyncedError"
		})
		if v, _ := f.secretValue(t, "outage", "database-credentials", "password"); v != syncCanary+"-pw" {
			t.Fatalf("the outage emptied or changed the target: %q", v)
		}
		// Retried on its own (with back-off), not left until the next refresh in an hour.
		poll(t, "a retry during the outage", func() bool {
			return testenv.MetricValue(f.reg, "keyway_syncer_sync_errors_total", "backend-unavailable") >= 2
		})
		// Another ExternalSecret reading the same secret through the same principal, synced
		// before the outage: its target, deleted while the other's refresh fails, comes back
		// from the last good read with no backend call, and it stays Ready.
		if err := f.kube.CoreV1().Secrets("outage").Delete(ctx, "db-copy", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the deleted target restored while Vault is down", func() bool {
			v, _ := f.secretValue(t, "outage", "db-copy", "password")
			return v == syncCanary+"-pw"
		})
		if st, r := f.ready(t, "outage", "db-copy"); st != "True" || r != "SecretSynced" {
			t.Fatalf("the copy's status after its repair: %s %s", st, r)
		}
		down.Store(false)
		// Bring the next retry forward rather than wait out the back-off it has reached.
		f.forceSync(t, "outage", "database-credentials")
		poll(t, "recovery once Vault is back", func() bool {
			st, r := f.ready(t, "outage", "database-credentials")
			return st == "True" && r == "SecretSynced"
		})
	})

	t.Run("a backend that accepts and never answers starves no other store", func(t *testing.T) {
		root := vaultRoot(t, addr, token)
		put := func(path, v string) {
			if _, err := root.Logical().WriteWithContext(ctx, "secret/data/"+path, map[string]any{"data": map[string]any{"k": v}}); err != nil {
				t.Fatal(err)
			}
		}
		es := func(ns, name, path, refresh string) string {
			return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: %s, namespace: %s}
spec:
  refreshInterval: %s
  secretStoreRef: {name: vault-backend}
  data:
  - {secretKey: k, remoteRef: {key: %s, property: k}}
`, name, ns, refresh, path)
		}
		f.namespace(t, "iso-slow")
		tokenSecret("iso-slow", "vault-token", token)
		f.apply(t, storeManifest("iso-slow", "vault-backend", f.proxy.URL, "vault-token"))
		f.namespace(t, "iso-calm")
		tokenSecret("iso-calm", "vault-token", token)
		f.apply(t, storeManifest("iso-calm", "vault-backend", addr, "vault-token"))
		for i := range 6 {
			put(fmt.Sprintf("iso/s%d", i), "v1")
			f.apply(t, es("iso-slow", fmt.Sprintf("s%d", i), fmt.Sprintf("iso/s%d", i), "1h"))
		}
		put("iso/calm", "v1")
		f.apply(t, es("iso-calm", "calm", "iso/calm", "2s"))
		for i := range 6 {
			poll(t, fmt.Sprintf("s%d synced", i), func() bool { v, _ := f.secretValue(t, "iso-slow", fmt.Sprintf("s%d", i), "k"); return v == "v1" })
		}
		poll(t, "calm synced", func() bool { v, _ := f.secretValue(t, "iso-calm", "calm", "k"); return v == "v1" })

		f.proxyHang.Store(true)
		defer f.proxyHang.Store(false)
		for i := range 6 {
			f.forceSync(t, "iso-slow", fmt.Sprintf("s%d", i)) // six reads that hang
		}
		time.Sleep(500 * time.Millisecond)
		put("iso/calm", "v2")
		changed := time.Now()
		testenv.Eventually(t, "the calm store's refresh while the other store's backend hangs", 15*time.Second, func() bool {
			v, _ := f.secretValue(t, "iso-calm", "calm", "k")
			return v == "v2"
		})
		t.Logf("a calm store's rotated value synced %.1f s after the write, at refreshInterval 2s, while 6 reads of another store hang (4 workers)", time.Since(changed).Seconds())
		if v, _ := f.secretValue(t, "iso-slow", "s0", "k"); v != "v1" {
			t.Fatalf("a hanging backend changed its target: %q", v)
		}
	})

	t.Run("credentials that come after their store", func(t *testing.T) {
		// GitOps applies in any order: the store and its ExternalSecret (refreshInterval 0:
		// synced once, never refreshed) before the token Secret they need.
		f.namespace(t, "late")
		f.apply(t, storeManifest("late", "vault-backend", addr, "vault-token"))
		f.apply(t, strings.Replace(seedGuideES("late"), "refreshInterval: 1h", "refreshInterval: 0s", 1))
		poll(t, "the store invalid without its token", func() bool { return f.storeReady(t, "late", "vault-backend") == "False/InvalidProviderConfig" })
		tokenSecret("late", "vault-token", token)
		arrived := time.Now()
		testenv.Eventually(t, "the store valid once its token exists", 10*time.Second, func() bool { return f.storeReady(t, "late", "vault-backend") == "True/Valid" })
		testenv.Eventually(t, "the ExternalSecret synced without waiting for a refresh", 10*time.Second, func() bool {
			v, _ := f.secretValue(t, "late", "database-credentials", "password")
			return v == syncCanary+"-pw"
		})
		t.Logf("token Secret created → store Valid and its ExternalSecret synced in %.1f s", time.Since(arrived).Seconds())
	})

	t.Run("refusals are conditions and events, never values", func(t *testing.T) {
		// A target the API server refuses is reported by field, without values.
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: invalid, namespace: shop}
spec:
  secretStoreRef: {name: vault-backend}
  target:
    template:
      type: kubernetes.io/basic-auth
      data: {token: '{{ .password }}'}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`)
		poll(t, "the invalid target reported", func() bool { st, r := f.ready(t, "shop", "invalid"); return st == "False" && r == "SecretSyncedError" })
		// An existing Secret it does not own is not taken over.
		if _, err := f.kube.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "shop"}, StringData: map[string]string{"password": "hand-made"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, strings.ReplaceAll(strings.ReplaceAll(seedGuideES("shop"), "name: database-credentials\n  namespace", "name: taken\n  namespace"), "target:\n    name: database-credentials", "target:\n    name: taken"))
		poll(t, "SecretSyncedError for the unowned Secret", func() bool { st, r := f.ready(t, "shop", "taken"); return st == "False" && r == "SecretSyncedError" })
		if v, _ := f.secretValue(t, "shop", "taken", "password"); v != "hand-made" {
			t.Fatal("an unowned Secret was overwritten")
		}
		// A store may not read credentials from another namespace.
		f.namespace(t, "thief")
		f.apply(t, strings.ReplaceAll(storeManifest("thief", "vault-backend", addr, "vault-token"), "key: token", "key: token\n          namespace: shop"))
		f.apply(t, seedGuideES("thief"))
		poll(t, "the cross-namespace refusal", func() bool {
			st, r := f.ready(t, "thief", "database-credentials")
			return st == "False" && r == "SecretSyncedError"
		})
		// Stores say whether they work before an ExternalSecret finds out.
		poll(t, "the thief's store marked invalid", func() bool { return f.storeReady(t, "thief", "vault-backend") == "False/InvalidProviderConfig" })
		poll(t, "the shop's store marked valid", func() bool { return f.storeReady(t, "shop", "vault-backend") == "True/Valid" })
		if _, ok := f.secretValue(t, "thief", "database-credentials", "password"); ok {
			t.Fatal("a store read another namespace's credentials")
		}
		// Wrong credentials: a different principal, its own read, a permission error.
		f.namespace(t, "wrong")
		tokenSecret("wrong", "vault-token", "not-a-token")
		f.apply(t, storeManifest("wrong", "vault-backend", addr, "vault-token"))
		f.apply(t, seedGuideES("wrong"))
		poll(t, "the permission error", func() bool {
			st, r := f.ready(t, "wrong", "database-credentials")
			return st == "False" && r == "SecretSyncedError"
		})
		if _, ok := f.secretValue(t, "wrong", "database-credentials", "password"); ok {
			t.Fatal("wrong credentials got the value another principal read")
		}
		// As ESO: a token Vault does not know makes the store itself invalid (lookup-self).
		poll(t, "the store with a bogus token marked invalid", func() bool { return f.storeReady(t, "wrong", "vault-backend") == "False/InvalidProviderConfig" })
		list, _ := f.kube.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		for _, e := range list.Items {
			if strings.Contains(e.Message, syncCanary) {
				t.Fatalf("an event leaks a value: %s", e.Message)
			}
		}
		if strings.Contains(f.logs.String(), syncCanary) || strings.Contains(f.logs.String(), token) {
			t.Fatalf("the syncer logged a value or a token:\n%s", f.logs.String())
		}
	})

	t.Run("hostile tenants: template budgets, Orphan takes nothing over, templateFrom errors quote nothing", func(t *testing.T) {
		f.namespace(t, "hostile")
		tokenSecret("hostile", "vault-token", token)
		f.apply(t, storeManifest("hostile", "vault-backend", addr, "vault-token"))
		f.namespace(t, "calm")
		tokenSecret("calm", "vault-token", token)
		f.apply(t, storeManifest("calm", "vault-backend", addr, "vault-token"))
		bombs := []string{
			`{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}{{end}}`,
			`{{indent 1500000000 ""}}`,
		}
		for i := range 10 {
			f.apply(t, fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: bomb-%d, namespace: hostile}
spec:
  secretStoreRef: {name: vault-backend}
  target:
    template:
      data: {x: %q}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`, i, bombs[i%2]))
		}
		start := time.Now()
		f.apply(t, seedGuideES("calm"))
		poll(t, "the calm tenant's Secret", func() bool {
			v, _ := f.secretValue(t, "calm", "database-credentials", "password")
			return v == syncCanary+"-pw"
		})
		t.Logf("behind 10 hostile templates: reconciled in %s", time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the calm tenant waited %s behind 10 hostile templates", took)
		}
		for i := range 10 {
			name := fmt.Sprintf("bomb-%d", i)
			poll(t, name+" refused on its budget", func() bool {
				st, _, msg := f.condition(t, "hostile", name)
				return st == "False" && strings.Contains(msg, "over its budget")
			})
		}
		// Orphan: creates a Secret it does not own, and writes only that one.
		orphan := func(name, target string) string {
			return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: %s, namespace: hostile}
spec:
  secretStoreRef: {name: vault-backend}
  target: {name: %s, creationPolicy: Orphan}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`, name, target)
		}
		f.apply(t, orphan("orphan-own", "orphan-made"))
		poll(t, "the Orphan target created", func() bool {
			v, _ := f.secretValue(t, "hostile", "orphan-made", "password")
			return v == syncCanary+"-pw"
		})
		no := true
		for _, victim := range []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: "unmanaged", Namespace: "hostile"}, StringData: map[string]string{"password": "keep-me"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "sealed", Namespace: "hostile", OwnerReferences: []metav1.OwnerReference{{APIVersion: "bitnami.com/v1alpha1", Kind: "SealedSecret", Name: "sealed", UID: "6d1b9f0e-0000-4000-8000-000000000001", Controller: &no}}},
				StringData: map[string]string{"password": "keep-me"}},
		} {
			if _, err := f.kube.CoreV1().Secrets("hostile").Create(ctx, victim, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.apply(t, orphan("orphan-"+victim.Name, victim.Name))
			poll(t, "Orphan refused for "+victim.Name, func() bool {
				st, _, msg := f.condition(t, "hostile", "orphan-"+victim.Name)
				return st == "False" && (strings.Contains(msg, "not created by this ExternalSecret") || strings.Contains(msg, "controlled by SealedSecret"))
			})
			if v, _ := f.secretValue(t, "hostile", victim.Name, "password"); v != "keep-me" {
				t.Fatalf("creationPolicy Orphan overwrote %s", victim.Name)
			}
		}
		// A templateFrom Secret that does not parse: the error names the place, not the text.
		if _, err := f.kube.CoreV1().Secrets("hostile").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tpl", Namespace: "hostile"},
			StringData: map[string]string{"t": "{{ " + syncCanary + "-tpl }"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.apply(t, `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: tplfrom, namespace: hostile}
spec:
  secretStoreRef: {name: vault-backend}
  target:
    template:
      templateFrom:
      - secret: {name: tpl, items: [{key: t}]}
  data:
  - {secretKey: password, remoteRef: {key: database/credentials, property: password}}
`)
		poll(t, "the templateFrom parse error", func() bool {
			st, _, msg := f.condition(t, "hostile", "tplfrom")
			return st == "False" && strings.Contains(msg, "does not parse as a template")
		})
		_, _, msg := f.condition(t, "hostile", "tplfrom")
		list, _ := f.kube.CoreV1().Events("hostile").List(ctx, metav1.ListOptions{})
		for _, e := range list.Items {
			msg += e.Message
		}
		if strings.Contains(msg, syncCanary) {
			t.Fatalf("a template's text from a Secret reached status or events: %s", msg)
		}
	})
}

func vaultRoot(t *testing.T, addr, token string) *vaultapi.Client {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// storeReady is a SecretStore's Ready condition as "status/reason".
func (f *syncerFixture) storeReady(t *testing.T, ns, name string) string {
	u, err := f.dyn.Resource(externalsecrets.SecretStoreGVR).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if msg, _ := m["message"].(string); strings.Contains(msg, syncCanary) {
			t.Fatalf("store status leaks a value: %v", m)
		}
		if m["type"] == "Ready" {
			return fmt.Sprintf("%s/%s", m["status"], m["reason"])
		}
	}
	return ""
}

// metricTotal sums a metric's series.

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, 30*time.Second, cond)
}
