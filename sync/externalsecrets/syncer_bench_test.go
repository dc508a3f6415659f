package externalsecrets_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/sync/api/crds"
	"github.com/keyway-dev/keyway/sync/externalsecrets"
)

// BenchmarkSyncer: 2,000 ExternalSecrets in 20 namespaces (a SecretStore per namespace,
// the same Vault credentials) over 100 distinct Vault secrets behind 1 ms of added latency.
// Figures: Vault reads (counted at the proxy) until every target exists, seconds from
// start until all 2,000 are Ready, and Secret writes in a forced refresh where nothing
// changed (from the API server's audit log).
func BenchmarkSyncer(b *testing.B) {
	ctx := b.Context()
	all, err := crds.All()
	if err != nil {
		b.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, all); err != nil {
		b.Fatal(err)
	}
	v, err := env.StartVault(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Stop()
	for i := range 100 {
		if _, err := v.Root.Logical().WriteWithContext(ctx, fmt.Sprintf("secret/data/app/s%d", i), map[string]any{"data": map[string]any{"password": fmt.Sprintf("pw-%d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	target, _ := url.Parse(v.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var reads atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		if strings.HasPrefix(r.URL.Path, "/v1/secret/data/app/") {
			reads.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	admin := kubernetes.NewForConfigOrDie(env.Config)
	dyn := dynamic.NewForConfigOrDie(env.Config)
	apply := func(manifest string) {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
			b.Fatal(err)
		}
		res := externalsecrets.ExternalSecretGVR
		if obj.GetKind() == "SecretStore" {
			res = externalsecrets.SecretStoreGVR
		}
		if _, err := dyn.Resource(res).Namespace(obj.GetNamespace()).Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	run := fmt.Sprintf("bench%d", time.Now().UnixNano()%100000)
	const namespaces, perNS = 20, 100
	for n := range namespaces {
		ns := fmt.Sprintf("%s-%d", run, n)
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-token"}, StringData: map[string]string{"token": v.RootToken}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		apply(strings.Replace(storeManifest(ns, "vault-backend", proxy.URL, "vault-token"), "apiVersion: external-secrets.io/v1beta1", "apiVersion: external-secrets.io/v1", 1))
		for i := range perNS {
			apply(fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es%d, namespace: %s}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: vault-backend}
  data:
  - {secretKey: password, remoteRef: {key: app/s%d, property: password}}
`, i, ns, (n*perNS+i)%100))
		}
	}
	const agent = "keyway-syncer-bench"
	cfg := kube.WithLimits(env.Config, kube.DefaultQPS, kube.DefaultBurst, agent)
	s, err := externalsecrets.NewSyncer(cfg, externalsecrets.SyncerOptions{Registry: prometheus.NewRegistry(), VaultServers: []string{proxy.URL}})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	go func() { _ = s.Run(runCtx) }()
	total := namespaces * perNS
	readyCount := func() int {
		ready := 0
		for n := range namespaces {
			list, err := dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace(fmt.Sprintf("%s-%d", run, n)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0
			}
			for _, it := range list.Items {
				conds, _, _ := unstructured.NestedSlice(it.Object, "status", "conditions")
				if len(conds) > 0 && conds[0].(map[string]any)["status"] == "True" {
					ready++
				}
			}
		}
		return ready
	}
	for readyCount() < total {
		if time.Since(start) > 15*time.Minute {
			b.Fatalf("only %d of %d Ready after 15 minutes", readyCount(), total)
		}
		time.Sleep(500 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(elapsed.Seconds(), "s-to-all-ready")
	b.ReportMetric(float64(reads.Load()), "vault-reads")
	b.ReportMetric(float64(total), "externalsecrets")
	// Memory: the syncer runs in this process, so its live heap (after a collection) and
	// the process's peak RSS (the benchmark's own clients included) bound what it holds.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MiB-live-heap")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "MiB-peak-RSS")
	}

	// A forced refresh of everything where nothing changed writes no Secret.
	quiet := time.Now()
	cacheReads := reads.Load()
	for n := range namespaces {
		ns := fmt.Sprintf("%s-%d", run, n)
		for i := range perNS {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"force-sync":%q}}}`, quiet.Format(time.RFC3339Nano))
			if _, err := dyn.Resource(externalsecrets.ExternalSecretGVR).Namespace(ns).Patch(ctx, fmt.Sprintf("es%d", i), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(10 * time.Second)
	reqs, err := env.Requests(quiet, agent)
	if err != nil {
		b.Fatal(err)
	}
	writes := 0
	for _, r := range reqs {
		if r.IsWrite() && r.Resource == "secrets" {
			writes++
		}
	}
	b.ReportMetric(float64(writes), "secret-writes/forced-refresh")
	b.ReportMetric(float64(reads.Load()-cacheReads), "vault-reads/forced-refresh")
}
