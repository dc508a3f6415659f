package apps

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/kube"
	"github.com/keyway-dev/keyway/internal/testenv"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

func obj(t *testing.T, y string) *unstructured.Unstructured { return testenv.Object(t, y) }

func TestOrder(t *testing.T) {
	var items []*apply.Object
	for _, y := range []string{
		"{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: shop}}",
		"{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: shop, annotations: {argocd.argoproj.io/sync-wave: '2'}}}",
		"{apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: shop, annotations: {argocd.argoproj.io/sync-wave: '-1'}}}",
		"{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: widgets.example.com}, spec: {group: example.com, names: {kind: Widget}}}",
		"{apiVersion: v1, kind: Namespace, metadata: {name: shop, annotations: {argocd.argoproj.io/sync-wave: '5'}}}",
		"{apiVersion: v1, kind: Service, metadata: {name: web, namespace: shop}}",
	} {
		it, err := newItem(obj(t, y), "test")
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	apply.Promote(items)
	apply.Sort(items)
	var got []string
	for _, it := range items {
		got = append(got, it.Obj.GetKind())
	}
	// The Namespace and the CRD move to wave -1 with the Widget; then kind order.
	want := []string{"Namespace", "CustomResourceDefinition", "Widget", "Service", "Deployment", "ConfigMap"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if n := len(apply.Waves(items)); n != 3 {
		t.Fatalf("%d waves", n)
	}
	if _, err := newItem(obj(t, "{kind: ConfigMap, metadata: {annotations: {argocd.argoproj.io/sync-wave: soon}}}"), "f.yaml: document 0"); err == nil {
		t.Fatal("a non-numeric wave was accepted")
	}
	h, _ := newItem(obj(t, "{kind: Job, metadata: {annotations: {argocd.argoproj.io/hook: PreSync}}}"), "")
	if !h.HookIn(PhasePreSync) || !deletePolicy(h, "BeforeHookCreation") || deletePolicy(h, "HookSucceeded") {
		t.Fatal("hook defaults")
	}
}

func TestBackoff(t *testing.T) {
	f := int64(3)
	a := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{SyncPolicy: &v1alpha1.SyncPolicy{Retry: &v1alpha1.RetryStrategy{Limit: 4,
		Backoff: &v1alpha1.Backoff{Duration: "10s", Factor: &f, MaxDuration: "1m"}}}}}
	var got []time.Duration
	for n := 1; ; n++ {
		d, ok := backoff(a, n)
		if !ok {
			break
		}
		got = append(got, d)
	}
	if want := []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, time.Minute}; !reflect.DeepEqual(got, want) {
		t.Fatalf("back-off %v, want %v", got, want)
	}
	a.Spec.SyncPolicy.Retry = &v1alpha1.RetryStrategy{Limit: 2}
	if d, ok := backoff(a, 2); !ok || d != 10*time.Second {
		t.Fatalf("defaults: %v %v", d, ok)
	}
	if _, ok := backoff(&v1alpha1.Application{}, 1); ok {
		t.Fatal("no retry policy retried")
	}
}

func TestSelectFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yml", "c.json", "README.md", "sub/d.yaml", ".hidden/e.yaml", "sub/skip.yaml"} {
		p := filepath.Join(dir, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte("{}"), 0o644)
	}
	rel := func(files []string) []string {
		var out []string
		for _, f := range files {
			r, _ := filepath.Rel(dir, f)
			out = append(out, filepath.ToSlash(r))
		}
		return out
	}
	for _, c := range []struct {
		o    v1alpha1.ApplicationSourceDirectory
		want []string
	}{
		{v1alpha1.ApplicationSourceDirectory{}, []string{"a.yaml", "b.yml", "c.json"}},
		{v1alpha1.ApplicationSourceDirectory{Recurse: true}, []string{"a.yaml", "b.yml", "c.json", "sub/d.yaml", "sub/skip.yaml"}},
		{v1alpha1.ApplicationSourceDirectory{Recurse: true, Exclude: "{sub/skip.yaml,c.json}"}, []string{"a.yaml", "b.yml", "sub/d.yaml"}},
		{v1alpha1.ApplicationSourceDirectory{Recurse: true, Include: "*.yaml"}, []string{"a.yaml", "sub/d.yaml", "sub/skip.yaml"}},
	} {
		src, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := selectFiles(src, dir, c.o)
		src.Close()
		if err != nil || !reflect.DeepEqual(rel(got), c.want) {
			t.Fatalf("%+v: %v %v, want %v", c.o, rel(got), err, c.want)
		}
	}
}

func TestCompileIgnores(t *testing.T) {
	rules, err := compileIgnores([]v1alpha1.ResourceIgnoreDiffs{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}, ManagedFieldsManagers: []string{"hpa"}}})
	if err != nil || len(rules) != 1 || rules[0].Kind != "Deployment" || rules[0].Managers[0] != "hpa" {
		t.Fatalf("%+v %v", rules, err)
	}
	if _, err := compileIgnores([]v1alpha1.ResourceIgnoreDiffs{{Kind: "X"}, {Kind: "X", JQPathExpressions: []string{".a[ | "}}}); err == nil || !strings.HasPrefix(err.Error(), "spec.ignoreDifferences[1].jqPathExpressions") {
		t.Fatalf("a bad jq expression: %v", err)
	}
}

func TestApplicationSetList(t *testing.T) {
	d := &Daemon{state: &state{}}
	set := &v1alpha1.ApplicationSet{}
	set.Name = "guestbook"
	raw := `{"goTemplate": false, "generators": [{"list": {"elements": [
	    {"cluster": "engineering-dev", "url": "https://1.2.3.4", "labels": {"tier": "dev"}},
	    {"cluster": "Engineering Prod", "url": "https://2.4.6.8", "labels": {"tier": "prod"}}]}}],
	  "template": {"metadata": {"name": "{{ cluster }}-guestbook"}, "spec": {"project": "default",
	    "source": {"repoURL": "https://github.com/argoproj/argocd-example-apps.git", "path": "guestbook/{{labels.tier}}", "targetRevision": "HEAD"},
	    "destination": {"server": "{{url}}", "namespace": "{{missing}}"}}}}`
	if err := json.Unmarshal([]byte(raw), &set.Spec); err != nil {
		t.Fatal(err)
	}
	set.Spec.Generators[0].List.Elements = set.Spec.Generators[0].List.Elements[:1]
	apps, err := d.generate(t.Context(), set, true)
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if a.Name != "engineering-dev-guestbook" || a.Spec.Source.Path != "guestbook/dev" || a.Spec.Destination.Server != "https://1.2.3.4" ||
		a.Spec.Destination.Namespace != "{{missing}}" {
		t.Fatalf("%+v %+v", a.ObjectMeta, a.Spec)
	}
	// Go templates: Sprig less the host functions; missingkey=error refuses an unknown key.
	set.Spec.GoTemplate = true
	set.Spec.GoTemplateOptions = []string{"missingkey=error"}
	set.Spec.Template = json.RawMessage(`{"metadata": {"name": "{{ .cluster | lower }}"}, "spec": {"source": {"repoURL": "r", "path": "{{ .labels.tier }}"}, "destination": {"server": "{{ .url }}", "namespace": "{{ .nope }}"}}}`)
	if _, err := d.generate(t.Context(), set, true); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missingkey=error: %v", err)
	}
	set.Spec.Template = json.RawMessage(`{"metadata": {"name": "{{ env \"HOME\" }}"}, "spec": {"source": {"repoURL": "r"}, "destination": {"server": "s"}}}`)
	if _, err := d.generate(t.Context(), set, true); err == nil || !strings.Contains(err.Error(), "env") {
		t.Fatalf("env reached a template: %v", err)
	}
	if got := normalize("Engineering Prod_1"); got != "engineering-prod-1" {
		t.Fatalf("normalize: %q", got)
	}
}

func TestWebhookParsing(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	req := func(headers map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/webhook", nil)
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		return r
	}
	body := []byte(`{}`)
	for name, c := range map[string]struct {
		h  map[string]string
		ok bool
	}{
		"gitlab token":                {map[string]string{"X-Gitlab-Token": "gl-token-0123456789"}, true},
		"gitlab wrong token":          {map[string]string{"X-Gitlab-Token": "nope"}, false},
		"gitlab with the hmac key":    {map[string]string{"X-Gitlab-Token": string(secret)}, false},
		"bitbucket cloud uuid":        {map[string]string{"X-Hook-UUID": "{bb-uuid-0123456789}"}, true},
		"bitbucket with the hmac key": {map[string]string{"X-Hook-UUID": "{" + string(secret) + "}"}, false},
		"nothing":                     {nil, false},
		"github sha1":                 {map[string]string{"X-Hub-Signature": "sha1=" + hexMAC(sha1.New, secret, body)}, true},
		"bitbucket server hmac":       {map[string]string{"X-Hub-Signature": "sha256=" + hexMAC(sha256.New, secret, body), "X-Event-Key": "repo:refs_changed"}, true},
	} {
		if got := verified(req(c.h), body, WebhookSecrets{HMAC: secret, GitLabToken: []byte("gl-token-0123456789"), BitbucketUUID: []byte("bb-uuid-0123456789")}); got != c.ok {
			t.Errorf("%s: verified %v", name, got)
		}
	}
	if verified(req(map[string]string{"X-Gitlab-Token": "x"}), body, WebhookSecrets{HMAC: secret}) {
		t.Fatal("a mode without its secret verified")
	}
	gl := []byte(`{"ref":"refs/heads/release","project":{"git_http_url":"https://gitlab.example/Org/App.git","git_ssh_url":"git@gitlab.example:org/app.git"}}`)
	p, ok := parsePush(req(map[string]string{"X-Gitlab-Event": "Push Hook"}), gl)
	if !ok || len(p.refs) != 1 || p.refs[0] != "release" {
		t.Fatalf("gitlab push: %+v %v", p, ok)
	}
	if _, ok := parsePush(req(map[string]string{"X-GitHub-Event": "ping"}), gl); ok {
		t.Fatal("a ping was taken for a push")
	}
	bb := []byte(`{"repository":{"links":{"html":{"href":"https://bitbucket.org/org/app"}}},"push":{"changes":[{"new":{"name":"main"}}]}}`)
	if p, ok := parsePush(req(map[string]string{"X-Event-Key": "repo:push"}), bb); !ok || p.refs[0] != "main" || p.urls[0] != "https://bitbucket.org/org/app" {
		t.Fatalf("bitbucket push: %+v %v", p, ok)
	}
	for _, pair := range [][2]string{
		{"https://github.com/Org/App", "git@github.com:org/app.git"},
		{"ssh://git@github.com:22/org/app.git", "https://github.com/org/app/"},
	} {
		if !sameRepo(pair[0], pair[1]) {
			t.Errorf("%s and %s should be the same repository", pair[0], pair[1])
		}
	}
	if sameRepo("https://github.com/org/app", "https://github.com/org/app-2") {
		t.Error("different repositories matched")
	}
}

func hexMAC(h func() hash.Hash, key, body []byte) string {
	m := hmac.New(h, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestWebhookMatchingSyncsATreeOnce(t *testing.T) {
	app := func(name, parent string) *appEntry {
		return &appEntry{app: &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Source: &v1alpha1.ApplicationSource{RepoURL: "https://git.example/org/infra.git", TargetRevision: "main"}}}, parent: parent, root: parent == ""}
	}
	d := &Daemon{state: &state{apps: map[string]*appEntry{"root": app("root", ""), "child": app("child", "root"), "grandchild": app("grandchild", "child")}}}
	d.apps["other"] = app("other", "")
	d.apps["other"].app.Spec.Source.RepoURL = "https://git.example/org/elsewhere.git"
	got := d.matching(push{urls: []string{"https://git.example/org/infra"}, refs: []string{"main"}})
	if len(got) != 1 || got[0] != "root" {
		t.Fatalf("matching = %v, want only the root (its sync covers its children)", got)
	}
}

// TestNamesCannotCollide: no Application name reaches an ApplicationSet's inventory, and
// names that could (or that leave a directory) are refused as Argo CD refuses them.
func TestNamesCannotCollide(t *testing.T) {
	for _, set := range []string{"team-b", "x"} {
		for _, app := range []string{"appset." + set, "set-" + set, "appset-" + set, setKey(set)} {
			if inventoryName(app) == inventoryName(setKey(set)) && app != setKey(set) {
				t.Fatalf("application %q takes the inventory of set %q", app, set)
			}
		}
	}
	valid := func(name string) error {
		a := &v1alpha1.Application{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind}, ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.ApplicationSpec{Source: &v1alpha1.ApplicationSource{RepoURL: "https://example.com/r"}, Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc"}}}
		return a.Validate()
	}
	for _, name := range []string{"ApplicationSet/x", "../x", "a/b", "Web", "x_y", strings.Repeat("a", 231)} {
		if err := valid(name); err == nil || !strings.Contains(err.Error(), "DNS-1123") {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"web-app", "appset.team-b", "a.b-c"} {
		if err := valid(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// TestHealthzStalled: /healthz fails once work waits and no sync has finished within the
// bound (a liveness probe then restarts the daemon, which gives up its Lease); a standby,
// or a loop that makes progress, is healthy.
func TestHealthzStalled(t *testing.T) {
	d := &Daemon{state: &state{}}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		d.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("a standby: %d", code)
	}
	d.queue, d.stallAfter = kube.NewQueue(), time.Minute
	d.progress.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	if code, _ := get(); code != 200 {
		t.Fatalf("nothing waits: %d", code)
	}
	d.queue.Add("app", kube.Low)
	if code, body := get(); code != 503 || !strings.Contains(body, "no sync has finished for 2m0s while 1 application(s) wait") {
		t.Fatalf("stalled: %d %q", code, body)
	}
	d.progress.Store(time.Now().UnixNano())
	if code, _ := get(); code != 200 {
		t.Fatalf("progress made: %d", code)
	}
}
