package apps

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/keyway-dev/keyway/internal/tmplfuncs"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// clusterSetDaemon is a daemon value enough for generate: a fake hub holding one cluster
// Secret made with kubectl apply (its last-applied annotation holds the bearer token).
func clusterSetDaemon(t *testing.T, o Options) *Daemon {
	t.Helper()
	token := "CANARY-bearer-token"
	last := `{"apiVersion":"v1","kind":"Secret","stringData":{"config":"{\"bearerToken\":\"` + token + `\"}"}}`
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "spoke", Namespace: "keyway-system",
		Labels:      map[string]string{LabelSecretType: ClusterSecretType, "env": "prod"},
		Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: last, "team": "a", "internal.example.com/owner": "ops"}},
		Data: map[string][]byte{"name": []byte("spoke"), "server": []byte("https://spoke.example:6443"), "project": []byte("team-a"), "config": []byte(`{"bearerToken":"` + token + `"}`)}}
	o.StateNamespace = "keyway-system"
	st := &state{o: o}
	d := &Daemon{state: st, kube: fake.NewClientset(sec)}
	st.hub = d
	return d
}

func clusterSet(tmpl string) *v1alpha1.ApplicationSet {
	raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "{{.name}}"}, "spec": map[string]any{
		"project": "default", "source": map[string]any{"repoURL": "https://example.com/r", "path": tmpl},
		"destination": map[string]any{"server": "{{.server}}", "namespace": "x"}}})
	return &v1alpha1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: v1alpha1.ApplicationSetSpec{GoTemplate: true,
		Generators: []v1alpha1.SetGenerator{{Clusters: &v1alpha1.ClusterGenerator{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}}, Template: raw}}
}

func TestClustersGeneratorGivesOnlyWhatArgoCDDocuments(t *testing.T) {
	d := clusterSetDaemon(t, Options{ClusterAnnotationsExcluded: []string{"internal.example.com/"}})
	for _, tmpl := range []string{
		`{{ index .metadata.annotations "kubectl.kubernetes.io/last-applied-configuration" }}`,
		`{{ toJson . }}`,
		`{{ range $k, $v := .metadata.annotations }}{{ $k }}={{ $v }};{{ end }}`,
	} {
		apps, err := d.generate(t.Context(), clusterSet(tmpl), true)
		if err != nil {
			t.Fatal(err)
		}
		path := apps[0].Spec.Source.Path
		if strings.Contains(path, "CANARY") || strings.Contains(path, "last-applied") || strings.Contains(path, "internal.example.com") {
			t.Fatalf("%s rendered %q", tmpl, path)
		}
	}
	apps, err := d.generate(t.Context(), clusterSet(`{{ .project }}/{{ .nameNormalized }}/{{ index .metadata.annotations "team" }}/{{ .metadata.labels.env }}`), true)
	if err != nil || apps[0].Spec.Source.Path != "team-a/spoke/a/prod" || apps[0].Spec.Destination.Server != "https://spoke.example:6443" {
		t.Fatalf("%v %+v", err, apps)
	}
}

func TestRepositorySetsMayNotUseTheClustersGenerator(t *testing.T) {
	d := clusterSetDaemon(t, Options{})
	if _, err := d.generate(t.Context(), clusterSet("x"), false); err == nil || !strings.Contains(err.Error(), "clusters generator is only for the operator's") {
		t.Fatalf("err = %v", err)
	}
	d = clusterSetDaemon(t, Options{RepoClustersGenerator: true})
	if _, err := d.generate(t.Context(), clusterSet("x"), false); err != nil {
		t.Fatalf("with --repo-clusters-generator: %v", err)
	}
}

// A hostile set's template stops on its budget instead of holding the daemon.
func TestSetTemplateBudget(t *testing.T) {
	d := clusterSetDaemon(t, Options{})
	for _, tmpl := range []string{
		`{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}`,
		`{{indent 1500000000 ""}}`,
	} {
		_, err := d.generate(t.Context(), clusterSet(tmpl), true)
		if err == nil || !strings.Contains(err.Error(), tmplfuncs.ErrBudget.Error()) {
			t.Fatalf("err = %v", err)
		}
	}
}
