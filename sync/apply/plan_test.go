package apply_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/apply"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// cluster is an apply.Cluster on the test API server whose requests carry agent.
func cluster(t *testing.T, agent string) *apply.Cluster {
	t.Helper()
	cfg := kube.WithLimits(env.Config, 100, 200, agent)
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	return &apply.Cluster{Kube: kubernetes.NewForConfigOrDie(cfg), Dyn: dynamic.NewForConfigOrDie(cfg),
		Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), FieldManager: "keyway-test",
		Timeout: 10 * time.Second, Poll: 100 * time.Millisecond}
}

func configMap(ns, name string) *apply.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace(ns)
	u.SetName(name)
	_ = unstructured.SetNestedStringMap(u.Object, map[string]string{"k": "v"}, "data")
	return &apply.Object{Obj: u, Source: "cm-" + name + ".yaml"}
}

func namespace(name string) *apply.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	return &apply.Object{Obj: u, Source: "ns.yaml"}
}

var owner = apply.Owner{Annotation: "example.com/owner", ID: func(k apply.Key) string { return "test:" + k.String() },
	Other: func(v string) string {
		if strings.HasPrefix(v, "test:") {
			return ""
		}
		return v
	}}

// TestPlanMissingNamespace: an object in a namespace that does not exist, and that nothing in
// the change set creates, fails the plan with the namespace named — before any write, so a
// sync never applies the objects ahead of it and then fails. A namespace the change set
// creates (a Namespace object, or the destination the caller creates) defers its objects.
// No namespace is read for it: the dry runs say which one is missing.
func TestPlanMissingNamespace(t *testing.T) {
	ctx := context.Background()
	agent := "keyway-apply-test-ns"
	c := cluster(t, agent)
	var objs []*apply.Object
	for i := range 30 {
		objs = append(objs, configMap("default", fmt.Sprintf("before-%02d", i)))
	}
	objs = append(objs, configMap("nowhere", "stranded"))
	since := time.Now().Add(-time.Second)
	_, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, objs)
	if err == nil || !strings.Contains(err.Error(), "namespace nowhere does not exist") || !strings.Contains(err.Error(), "cm-stranded.yaml") {
		t.Fatalf("Plan: %v, want the missing namespace named", err)
	}
	reqs, err := env.Requests(since, agent)
	if err != nil {
		t.Fatal(err)
	}
	gets := map[string]int{}
	for _, r := range reqs {
		if r.IsWrite() {
			t.Fatalf("a write while planning: %s %s", r.Verb, r.URI)
		}
		if r.Resource == "namespaces" && r.Verb == "get" {
			gets[r.Name]++
		}
	}
	if len(gets) != 0 {
		t.Fatalf("namespace reads %v, want none: the dry runs say which namespace is missing", gets)
	}
	if _, err := c.Kube.CoreV1().ConfigMaps("default").Get(ctx, "before-00", metav1.GetOptions{}); err == nil {
		t.Fatal("an object was written")
	}

	// Created by the change set: a Namespace object, or the caller's destination.
	for _, o := range []struct {
		opts apply.PlanOptions
		objs []*apply.Object
	}{
		{apply.PlanOptions{Owner: owner}, []*apply.Object{namespace("made-here"), configMap("made-here", "inside")}},
		{apply.PlanOptions{Owner: owner, Namespace: "made-here", CreatesNamespace: true}, []*apply.Object{configMap("", "inside")}},
	} {
		ps, err := c.Plan(ctx, o.opts, o.objs)
		if err != nil {
			t.Fatal(err)
		}
		last := ps[len(ps)-1]
		if !last.Deferred || last.Action != apply.Create || last.Obj.GetNamespace() != "made-here" {
			t.Fatalf("%+v: deferred %v action %v namespace %q", o.opts, last.Deferred, last.Action, last.Obj.GetNamespace())
		}
	}

	// The namespace exists: the objects are dry-run as usual.
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nowhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Deferred || p.Action != apply.Create || p.Dry == nil {
			t.Fatalf("%s: deferred %v action %v dry-run %v", p.Key(), p.Deferred, p.Action, p.Dry != nil)
		}
	}
}

// TestSecretKeyRemoved: a key that leaves a Secret's stringData in git leaves the live
// Secret. (Applied as stringData, server-side apply would own only stringData, which is
// never stored, and the key would stay in data for ever.)
func TestSecretKeyRemoved(t *testing.T) {
	ctx := context.Background()
	c := cluster(t, "keyway-apply-test-secret")
	secret := func(data map[string]string) *apply.Object {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Secret")
		u.SetNamespace("default")
		u.SetName("normalised")
		_ = unstructured.SetNestedStringMap(u.Object, data, "stringData")
		return &apply.Object{Obj: u, Source: "secret.yaml"}
	}
	sync := func(data map[string]string) {
		t.Helper()
		ps, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, []*apply.Object{secret(data)})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ps[0].Obj.Object["stringData"]; ok {
			t.Fatal("the planned Secret still holds stringData")
		}
		if ps[0].Action == apply.Unchanged {
			t.Fatal("a changed Secret planned as unchanged")
		}
		if _, err := c.Apply(ctx, ps[0], false); err != nil {
			t.Fatal(err)
		}
	}
	sync(map[string]string{"user": "app", "password": "CANARY-1", "retired": "CANARY-2"})
	sync(map[string]string{"user": "app", "password": "CANARY-3"})
	live, err := c.Kube.CoreV1().Secrets("default").Get(ctx, "normalised", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := live.Data["retired"]; ok || string(live.Data["password"]) != "CANARY-3" || string(live.Data["user"]) != "app" {
		t.Fatalf("live keys %v, want user and the new password only", keysOf(live.Data))
	}
	// Nothing left to do: the next plan finds it unchanged.
	ps, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, []*apply.Object{secret(map[string]string{"user": "app", "password": "CANARY-3"})})
	if err != nil || ps[0].Action != apply.Unchanged {
		t.Fatalf("re-plan: %v, action %v", err, ps[0].Action)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestHandOverFromClientSideApply: an object last written by client-side apply (kubectl
// apply's field manager) is handed over on keyway's first apply, so a key removed from git
// leaves the live object; without the hand-over server-side apply leaves fields another
// manager owns in place.
func TestHandOverFromClientSideApply(t *testing.T) {
	ctx := context.Background()
	for _, handOver := range []bool{false, true} {
		c := cluster(t, "keyway-apply-test-handover")
		name := fmt.Sprintf("csa-%v", handOver)
		if handOver {
			c.HandOver = []string{"kubectl-client-side-apply"}
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1","kind":"ConfigMap","data":{"kept":"1","retired":"2"}}`}},
			Data: map[string]string{"kept": "1", "retired": "2"}}
		if _, err := c.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
			t.Fatal(err)
		}
		obj := configMap("default", name)
		_ = unstructured.SetNestedStringMap(obj.Obj.Object, map[string]string{"kept": "1"}, "data")
		ps, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, []*apply.Object{obj})
		if err != nil {
			t.Fatal(err)
		}
		if ps[0].HandOver != handOver || ps[0].Action != apply.Update {
			t.Fatalf("hand-over %v: planned hand-over %v, action %v", handOver, ps[0].HandOver, ps[0].Action)
		}
		if _, err := c.Apply(ctx, ps[0], false); err != nil {
			t.Fatal(err)
		}
		live, err := c.Kube.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, kept := live.Data["retired"]
		if kept == handOver {
			t.Fatalf("hand-over %v: the key removed from git is still live: %v", handOver, kept)
		}
		if handOver {
			for _, mf := range live.ManagedFields {
				if mf.Manager == "kubectl-client-side-apply" {
					t.Fatalf("client-side apply still owns fields: %+v", mf)
				}
			}
		}
	}
}

// TestImmutableRecreate: a change the API server refuses as immutable (an immutable
// ConfigMap's data) fails the plan naming the object and the way out, before any write;
// with Recreate (the sync option Replace=true or Force=true) the object is deleted and
// created again with the change.
func TestImmutableRecreate(t *testing.T) {
	ctx := context.Background()
	c := cluster(t, "keyway-apply-test-immutable")
	yes := true
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "frozen", Namespace: "default"}, Data: map[string]string{"k": "v1"}, Immutable: &yes}
	created, err := c.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := func(recreate bool) *apply.Object {
		o := configMap("default", "frozen")
		_ = unstructured.SetNestedStringMap(o.Obj.Object, map[string]string{"k": "v2"}, "data")
		_ = unstructured.SetNestedField(o.Obj.Object, true, "immutable")
		o.Recreate = recreate
		return o
	}
	if _, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, []*apply.Object{want(false)}); err == nil ||
		!strings.Contains(err.Error(), "cm-frozen.yaml") || !strings.Contains(err.Error(), "Replace=true") {
		t.Fatalf("an immutable change without Recreate: %v", err)
	}
	ps, err := c.Plan(ctx, apply.PlanOptions{Owner: owner}, []*apply.Object{want(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !ps[0].Replace || ps[0].Action != apply.Update {
		t.Fatalf("planned replace %v action %v", ps[0].Replace, ps[0].Action)
	}
	if _, err := c.Apply(ctx, ps[0], false); err != nil {
		t.Fatal(err)
	}
	live, err := c.Kube.CoreV1().ConfigMaps("default").Get(ctx, "frozen", metav1.GetOptions{})
	if err != nil || live.Data["k"] != "v2" || live.UID == created.UID {
		t.Fatalf("after the recreate: %v %v (same object: %v)", err, live.Data, live.UID == created.UID)
	}
}
