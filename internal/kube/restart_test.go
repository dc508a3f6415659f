package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/testenv"
)

// TestInformerAfterAPIServerRestart: an informer that lives through an API server restart
// sees objects created after it within seconds. Its first list came in more than one page
// (over 500 Secrets), so client-go re-lists in pages from the last version it saw; a paged
// list at an old version is served at exactly that version, blind to everything since, until
// etcd compacts it (about 10 minutes). A re-list must be a fresh, consistent one.
func TestInformerAfterAPIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own API server")
	}
	ctx := t.Context()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	client := kubernetes.NewForConfigOrDie(kube.WithLimits(env.Config, 500, 1000, "keyway-restart-test"))
	secrets := client.CoreV1().Secrets("default")
	for i := range 520 { // more than one page of 500
		if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("filler-%03d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inf := kube.SecretInformer(client, cache.Indexers{}, func(obj any) (any, error) { return obj, nil })
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go inf.RunWithContext(runCtx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("the informer did not sync")
	}
	if n := len(inf.GetStore().List()); n < 520 {
		t.Fatalf("the informer holds %d Secrets, want at least 520", n)
	}

	// A write the informer does not watch: the restarted API server's watch cache begins
	// after the informer's last version, so its watch from that version is refused as too
	// old and it re-lists.
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // the informer's watch breaks; its re-lists are refused meanwhile
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the informer sees a Secret created after the restart", 10*time.Second, func() bool {
		_, ok, _ := inf.GetStore().GetByKey("default/after-restart")
		return ok
	})
	reqs, err := env.Requests(back.Add(-time.Minute), "keyway-restart-test")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if r.Resource == "secrets" && r.Verb == "list" && strings.Contains(r.URI, "resourceVersion=") {
			t.Errorf("a list pinned to an old version: %s", r.URI)
		}
	}
	t.Logf("a Secret created after the API server came back was seen %.2f s later", time.Since(back).Seconds())
}
