package sealedsecrets_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sealing"
	"github.com/keyway-dev/keyway/sync/sealedsecrets"
)

var heapProfile = flag.String("unseal-heap-profile", "", "BenchmarkUnsealAtScale: write the restarted unsealer's heap profile to this path (.N appended)")

var unsealQPS = flag.Float64("unseal-qps", kube.DefaultQPS, "BenchmarkUnsealAtScale: the unsealer's --kube-qps (burst twice that)")

var unsealScale = flag.String("unseal-scale", "1000", "comma-separated SealedSecret counts for BenchmarkUnsealAtScale (10000 takes minutes)")

// BenchmarkUnsealAtScale: N SealedSecrets of 5 keys each, sealed for an RSA-4096 key, are
// in the cluster when the unsealer starts; figures: seconds until every Secret holds its
// values, the process's CPU seconds and peak RSS over that time, then — with a resync every
// 5 s running — how long a SealedSecret created during a resync, a hand-edited Secret and
// a deleted Secret take to be right again, and the unsealer's write requests (from the API
// server's audit log) over one resync of N settled objects.
func BenchmarkUnsealAtScale(b *testing.B) {
	for _, s := range strings.Split(*unsealScale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("-unseal-scale %q", s)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				unsealAtScale(b, n)
			}
		})
	}
}

func unsealAtScale(b *testing.B, n int) {
	if *heapProfile != "" {
		runtime.MemProfileRate = 4096 // fine enough to tell cache entries apart, cheap enough at 10,000
	}
	ctx := b.Context()
	admin := kubernetes.NewForConfigOrDie(env.Config)
	adminDyn := dynamic.NewForConfigOrDie(env.Config)
	crd, err := os.ReadFile("../../examples/sealedsecret/crd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, crd); err != nil {
		b.Fatal(err)
	}
	run := fmt.Sprintf("scale-%d-%d", n, time.Now().UnixNano()%100000)
	keysNS, ns := run+"-keys", run
	for _, name := range []string{keysNS, ns} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
	ring := sealing.Ring{Client: admin, Namespace: keysNS}
	key, err := ring.Generate(ctx, sealing.KeyBits)
	if err != nil {
		b.Fatal(err)
	}
	// Seal and create the SealedSecrets before the unsealer exists.
	if err := createSealed(ctx, adminDyn, &key.Private.PublicKey, n, func(i int) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%05d", i), Namespace: ns}, StringData: map[string]string{}}
		for k := range 5 {
			s.StringData[fmt.Sprintf("key%d", k)] = fmt.Sprintf("value-%d-%d", i, k)
		}
		return s
	}); err != nil {
		b.Fatal(err)
	}

	// The heap before any unsealer: what the restarted one holds above it is its caches.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	const agent = "keyway-unsealer-bench"
	cfg := kube.WithLimits(env.Config, float32(*unsealQPS), int(2**unsealQPS), agent)
	reg := prometheus.NewRegistry()
	u := sealedsecrets.New(kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg), sealedsecrets.Options{
		Namespace: keysNS, KeyRenewPeriod: -1, ResyncPeriod: 5 * time.Second, Registry: reg, Workers: 2 * runtime.GOMAXPROCS(0)})
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()

	b.ResetTimer()
	cpu0, start := cpuSeconds(), time.Now()
	peak := sampleHeap(runCtx, *heapProfile, n)
	if err := u.Start(runCtx); err != nil {
		b.Fatal(err)
	}
	go func() { _ = u.Run(runCtx) }()
	correct := func() bool {
		list, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false
		}
		ok := 0
		for _, s := range list.Items {
			var i int
			if _, err := fmt.Sscanf(s.Name, "s%05d", &i); err == nil && len(s.Data) == 5 && string(s.Data["key4"]) == fmt.Sprintf("value-%d-4", i) {
				ok++
			}
		}
		return ok == n
	}
	// The clock stops when the unsealer has created the last Secret (read from its metrics:
	// listing every Secret over and over would take the CPU the unsealer is measured on),
	// then every Secret is checked from the API server.
	waitFor(b, 10*time.Minute, func() bool { return counter(b, reg, "created") >= float64(n) })
	elapsed, cpu := time.Since(start), cpuSeconds()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
	waitFor(b, time.Minute, correct)
	b.ReportMetric(elapsed.Seconds(), "s-to-all-unsealed")
	b.ReportMetric(cpu, "cpu-s")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(5*n)/cpu, "values/cpu-s")
	b.ReportMetric(decryptions(b, reg)/float64(5*n), "rsa-decryptions/value")
	// What stays: the unsealer's caches and queue (the benchmark's own objects are garbage).
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "live-heap-MiB")

	// Settled (status updates trail the Secrets: wait until the unsealer writes nothing for
	// 2 s), one full resync period of checks makes no write request.
	countWrites := func(since time.Time) int {
		reqs, err := env.Requests(since, agent)
		if err != nil {
			b.Fatal(err)
		}
		w := 0
		for _, r := range reqs {
			if r.IsWrite() {
				w++
			}
		}
		return w
	}
	for quiet := time.Now(); ; {
		time.Sleep(2 * time.Second)
		if countWrites(quiet) == 0 {
			break
		}
		quiet = time.Now()
	}
	quiet := time.Now()
	unchanged0 := counter(b, reg, "unchanged")
	waitFor(b, time.Minute, func() bool { return counter(b, reg, "unchanged")-unchanged0 >= float64(n) })
	b.ReportMetric(float64(countWrites(quiet)), "writes/resync")

	// A new SealedSecret while a resync of n is under way waits for nothing.
	unchanged0 = counter(b, reg, "unchanged")
	waitFor(b, time.Minute, func() bool { return counter(b, reg, "unchanged") > unchanged0 }) // a resync has begun
	t0 := time.Now()
	if err := createSealed(ctx, adminDyn, &key.Private.PublicKey, 1, func(int) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: ns}, StringData: map[string]string{"k": "v"}}
	}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, func() bool {
		_, err := admin.CoreV1().Secrets(ns).Get(ctx, "fresh", metav1.GetOptions{})
		return err == nil
	})
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "new-during-resync-ms")

	// A hand edit and a deletion are put right from the watch.
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, "s00007", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sec.Data["key4"] = []byte("edited")
	t0 = time.Now()
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, func() bool {
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, "s00007", metav1.GetOptions{})
		return err == nil && string(s.Data["key4"]) == "value-7-4"
	})
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "drift-restore-ms")
	t0 = time.Now()
	if err := admin.CoreV1().Secrets(ns).Delete(ctx, "s00008", metav1.DeleteOptions{}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, func() bool {
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, "s00008", metav1.GetOptions{})
		return err == nil && s.DeletionTimestamp == nil
	})
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "recreate-ms")
	cancel()

	// A restart (a rollout, a new leader): a fresh process has never seen these settled;
	// the Secrets' proofs let it check all of them without decrypting.
	time.Sleep(time.Second)
	reg2 := prometheus.NewRegistry()
	u2 := sealedsecrets.New(kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg), sealedsecrets.Options{
		Namespace: keysNS, KeyRenewPeriod: -1, ResyncPeriod: time.Hour, Registry: reg2, Workers: 2 * runtime.GOMAXPROCS(0)})
	run2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	cpu0, t0 = cpuSeconds(), time.Now()
	if err := u2.Start(run2); err != nil {
		b.Fatal(err)
	}
	go func() { _ = u2.Run(run2) }()
	waitFor(b, 10*time.Minute, func() bool {
		return testenv.MetricValue(reg2, "keyway_unseal_requests_total", "unchanged") >= float64(n)
	})
	b.ReportMetric(time.Since(t0).Seconds(), "restart-s-to-all-checked")
	b.ReportMetric(cpuSeconds()-cpu0, "restart-cpu-s")
	b.ReportMetric(decryptions(b, reg2), "restart-rsa-decryptions")
	// The restarted process's steady state: settled SealedSecrets are cached without their
	// ciphertexts (the first process, stopped, is garbage by now).
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "restart-live-heap-MiB")
	b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(base))/float64(n), "restart-heap-B/sealedsecret")
	if *heapProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", *heapProfile, n))
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	cancel2()
	// The next size starts from an empty cluster: its unsealer must not spend decryptions on
	// this run's SealedSecrets (sealed for another ring) while the namespace terminates.
	// (The test environment runs no namespace controller: the objects go by hand.)
	if err := adminDyn.Resource(sealedsecrets.SealedSecretGVR).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	waitFor(b, 10*time.Minute, func() bool {
		list, err := adminDyn.Resource(sealedsecrets.SealedSecretGVR).Namespace(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(list.Items) == 0
	})
}

func waitFor(b *testing.B, timeout time.Duration, cond func() bool) {
	b.Helper()
	if err := wait.PollUntilContextTimeout(b.Context(), 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		b.Fatalf("timed out after %s", timeout)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func decryptions(b *testing.B, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "keyway_unseal_rsa_decryptions_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// sampleHeap samples the heap in use every 100 ms until the returned func is called, which
// returns the highest seen: the unsealer's working memory while it runs (the process's peak
// RSS also holds the benchmark's own setup). With a profile path, the heap profile at that
// peak is written to path.peak.N.
func sampleHeap(ctx context.Context, path string, n int) func() uint64 {
	var highest uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var ms runtime.MemStats
		lastProfile := time.Time{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= highest {
				continue
			}
			highest = ms.HeapInuse
			if path != "" && time.Since(lastProfile) > time.Second {
				if f, err := os.Create(fmt.Sprintf("%s.peak.%d", path, n)); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
				lastProfile = time.Now()
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return highest
	}
}
