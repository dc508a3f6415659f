package argocd

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyway-dev/keyway/providers"
)

func TestParseAndRenderOptions(t *testing.T) {
	env, err := Parse([]string{
		"ARGOCD_APP_NAME=shop", "ARGOCD_APP_NAMESPACE=prod", "ARGOCD_APP_PROJECT_NAME=team-a",
		"KUBE_VERSION=v1.31.2", "KUBE_API_VERSIONS=v1, apps/v1 ,",
		`ARGOCD_APP_PARAMETERS=[{"name":"values-files","array":["values-prod.yaml"]},{"name":"set","map":{"b":"2","a":"1"}},{"name":"skip-crds","string":"true"},{"name":"release-name","string":"shop-v2"}]`,
		"ARGOCD_ENV_VAULT_NAMESPACE=team-a", "ARGOCD_ENV_=ignored", "OTHER=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !env.Detected() || env.Project != "team-a" || len(env.APIVersions) != 2 || env.AppEnv["VAULT_NAMESPACE"] != "team-a" || len(env.AppEnv) != 1 {
		t.Fatalf("env = %+v", env)
	}
	o, err := env.RenderOptions()
	if err != nil {
		t.Fatal(err)
	}
	h := o.Helm
	if h.ReleaseName != "shop-v2" || h.Namespace != "prod" || h.KubeVersion != "1.31.2" || !h.SkipCRDs ||
		strings.Join(h.Set, ",") != "a=1,b=2" || strings.Join(h.ValuesFiles, ",") != "values-prod.yaml" {
		t.Fatalf("helm options = %+v", h)
	}
}

func TestRenderOptionsRefuses(t *testing.T) {
	tests := []struct{ params, want string }{
		{`[{"name":"helm-args","string":"--post-renderer x"}]`, `unknown plugin parameter "helm-args"`},
		{`[{"name":"values-files","array":["/etc/passwd"]}]`, "must be relative"},
		{`[{"name":"skip-crds","string":"maybe"}]`, `"maybe" is not true or false`},
		{`[{"name":"set","map":{"a=b":"c"}}]`, "may not contain '='"},
		{`{not json`, "not the JSON list"},
	}
	for _, tt := range tests {
		env, err := Parse([]string{"ARGOCD_APP_NAME=x", "ARGOCD_APP_PARAMETERS=" + tt.params})
		if err == nil {
			_, err = env.RenderOptions()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.params, err, tt.want)
		}
	}
}

func TestOverlay(t *testing.T) {
	base := func(k string) (string, bool) {
		if k == "VAULT_ADDR" {
			return "https://vault.internal", true
		}
		return "", false
	}
	env := Env{AppEnv: map[string]string{"VAULT_ADDR": "https://evil", "FEATURE_FLAG": "on"}}
	if _, err := (Policy{}).Overlay(env, base); err == nil || !strings.Contains(err.Error(), "ARGOCD_ENV_VAULT_ADDR") {
		t.Fatalf("err = %v, want VAULT_ADDR refused", err)
	}
	look, err := (Policy{AllowEnv: []string{"VAULT_ADDR"}}).Overlay(env, base)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := look("VAULT_ADDR"); v != "https://evil" {
		t.Fatalf("allowed override not applied: %q", v)
	}
	if _, ok := look("FEATURE_FLAG"); ok {
		t.Fatal("an unrelated application variable leaked into keyway's environment")
	}
}

func TestRefCheck(t *testing.T) {
	p := Policy{ProjectPaths: map[string][]string{
		"team-a": {"secret/data/team-a/", "awssm:prod/team-a/"},
		"narrow": {"secret/data/team-a", "awssm:prod-*"},
		"*":      {"secret/data/shared/"},
	}}
	tests := []struct {
		project string
		ref     providers.Ref
		ok      bool
	}{
		{"team-a", providers.Ref{Backend: "vault", Path: "secret/data/team-a/db"}, true},
		{"team-a", providers.Ref{Backend: "awssm", Path: "prod/team-a/db"}, true},
		{"team-a", providers.Ref{Backend: "gcpsm", Path: "prod/team-a/db"}, false},
		{"team-a", providers.Ref{Backend: "vault", Path: "secret/data/team-b/db"}, false},
		{"team-c", providers.Ref{Backend: "vault", Path: "secret/data/shared/x"}, true},
		{"team-c", providers.Ref{Backend: "vault", Path: "secret/data/team-a/db"}, false},
		// Paths a backend would clean never pass, whatever their text starts with.
		{"team-a", providers.Ref{Backend: "vault", Path: "secret/data/team-a/../team-b/db"}, false},
		{"team-a", providers.Ref{Backend: "vault", Path: "/secret/data/team-a/../../data/team-b/db"}, false},
		{"team-a", providers.Ref{Backend: "vault", Path: "secret/data/team-a//db"}, false},
		{"team-a", providers.Ref{Backend: "vault", Path: "secret/data/team-a/%2e%2e/team-b/db"}, false},
		{"team-a", providers.Ref{Backend: "vault", Path: "/secret/data/team-a/db"}, true},
		{"narrow", providers.Ref{Backend: "vault", Path: "secret/data/team-ab/db"}, false},
		{"narrow", providers.Ref{Backend: "vault", Path: "secret/data/team-a/db"}, true},
		{"narrow", providers.Ref{Backend: "awssm", Path: "prod-db"}, true},
		{"narrow", providers.Ref{Backend: "awssm", Path: "staging-db"}, false},
	}
	for _, tt := range tests {
		err := p.RefCheck(tt.project)(tt.ref)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, providers.ErrPermissionDenied)) {
			t.Errorf("%s %s: err = %v, want ok=%v", tt.project, tt.ref, err, tt.ok)
		}
	}
	if (Policy{}).RefCheck("any") != nil {
		t.Fatal("no policy should mean no check")
	}
}

func TestRepoRoot(t *testing.T) {
	for _, tt := range []struct{ sp, want string }{
		{"apps/chart", "/repo"},
		{"", "/repo/apps/chart"},
		{".", "/repo/apps/chart"},
	} {
		got, err := Env{SourcePath: tt.sp}.RepoRoot("/repo/apps/chart")
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.sp, got, err, tt.want)
		}
	}
	if _, err := (Env{SourcePath: "../up"}).RepoRoot("/repo/x"); err == nil {
		t.Fatal("a source path leaving the repository was accepted")
	}
}
