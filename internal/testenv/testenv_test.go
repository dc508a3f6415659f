package testenv_test

import (
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyway-dev/keyway/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

func TestSmoke(t *testing.T) {
	ctx := t.Context()
	t.Logf("start-to-ready: %s", env.StartupTime)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smoke"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "smoke"},
		StringData: map[string]string{"password": "hunter2"},
	}
	if _, err := cs.CoreV1().Secrets("smoke").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	got, err := cs.CoreV1().Secrets("smoke").Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get secret: %v", err)
	}
	if string(got.Data["password"]) != "hunter2" {
		t.Fatalf("secret data = %q, want the stringData the API server folded into data", got.Data["password"])
	}

	// A watch from the current resourceVersion must deliver the update we make next.
	w, err := cs.CoreV1().Secrets("smoke").Watch(ctx, metav1.ListOptions{
		FieldSelector:   "metadata.name=db",
		ResourceVersion: got.ResourceVersion,
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	got.Data["password"] = []byte("rotated")
	if _, err := cs.CoreV1().Secrets("smoke").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update secret: %v", err)
	}
	select {
	case ev := <-w.ResultChan():
		s, ok := ev.Object.(*corev1.Secret)
		if ev.Type != watch.Modified || !ok || string(s.Data["password"]) != "rotated" {
			t.Fatalf("watch event = %s %T, want MODIFIED with the rotated value", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s of the update")
	}

	crds, err := os.ReadFile("testdata/widgets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.InstallCRDs(ctx, crds); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "test.keyway.dev", Version: "v1", Resource: "widgets"}).Namespace("smoke")
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.keyway.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	if _, err := widgets.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create widget: %v", err)
	}
	back, err := widgets.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get widget: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(back.Object, "spec", "size"); size != 3 {
		t.Fatalf("widget spec.size = %d, want 3", size)
	}
	// Structural schema is enforced: a string where an integer belongs is refused.
	bad := obj.DeepCopy()
	bad.SetName("w2")
	_ = unstructured.SetNestedField(bad.Object, "three", "spec", "size")
	if _, err := widgets.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("create widget with string size: err = %v, want Invalid", err)
	}
}

func TestKubeconfigFile(t *testing.T) {
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("kubeconfig client: %v", err)
	}
}

// BenchmarkStart measures a cold start of a second, independent etcd + kube-apiserver
// beside the shared one (so it also proves two environments coexist on free ports).
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		e, err := testenv.Start(b.Context(), testenv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(e.StartupTime.Seconds(), "start-to-ready-s")
		if err := e.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}
