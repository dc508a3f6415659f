package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Vault is a running `vault server -dev`, set up for keyway's tests:
//
//	secret/   KV v2 (the dev default)        kv1/   KV v1
//	auth/approle/    role "keyway"           auth/userpass/   user "keyway"
//	auth/kubernetes/ role "keyway" for service account default/keyway, reviewing tokens
//	                 with the test kube-apiserver
//	auth/jwt/        role "keyway" accepting that service account's token, verified with
//	                 the API server's signing key
//	policy "reader"  read on secret/* and kv1/*
type Vault struct {
	Addr      string
	RootToken string
	// Root is a client authenticated with the root token, for seeding.
	Root *vaultapi.Client
	// RoleID and SecretID log in through AppRole role "keyway".
	RoleID, SecretID string
	// Username and Password log in through userpass.
	Username, Password string
	// KubernetesJWTFile holds a service-account token for default/keyway (Kubernetes auth).
	KubernetesJWTFile string
	StartupTime       time.Duration

	env *Env
}

// StartVault starts Vault beside a running Env (for the Kubernetes auth method). Stop it
// with Stop; its files live in the Env's temporary directory.
func (e *Env) StartVault(ctx context.Context) (*Vault, error) {
	begin := time.Now()
	bin, err := findBinary("vault")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "vault")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	v := &Vault{Addr: "http://127.0.0.1:" + strconv.Itoa(ports[0]), RootToken: "keyway-root", env: e}
	if err := e.spawnEnv("vault", bin, []string{"HOME=" + dir, "VAULT_LOG_LEVEL=warn"},
		"server", "-dev", "-dev-no-store-token",
		"-dev-root-token-id="+v.RootToken,
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(ports[0]),
	); err != nil {
		return nil, err
	}
	if err := e.waitHTTP(ctx, "vault", v.Addr+"/v1/sys/health", nil, 60*time.Second); err != nil {
		return nil, err
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	root, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("testenv: vault client: %w", err)
	}
	root.SetToken(v.RootToken)
	root.ClearNamespace()
	v.Root = root
	if err := v.setup(ctx); err != nil {
		return nil, err
	}
	v.StartupTime = time.Since(begin)
	return v, nil
}

func (v *Vault) setup(ctx context.Context) error {
	sys := v.Root.Sys()
	if err := sys.MountWithContext(ctx, "kv1", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		return fmt.Errorf("testenv: mount kv1: %w", err)
	}
	if err := sys.PutPolicyWithContext(ctx, "reader", `
path "secret/*" { capabilities = ["read", "list"] }
path "kv1/*"    { capabilities = ["read", "list"] }
`); err != nil {
		return fmt.Errorf("testenv: policy: %w", err)
	}
	for _, m := range []string{"approle", "userpass", "kubernetes", "jwt"} {
		if err := sys.EnableAuthWithOptionsWithContext(ctx, m, &vaultapi.EnableAuthOptions{Type: m}); err != nil {
			return fmt.Errorf("testenv: enable auth %s: %w", m, err)
		}
	}
	w := func(path string, data map[string]any) (*vaultapi.Secret, error) {
		s, err := v.Root.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			return nil, fmt.Errorf("testenv: write %s: %w", path, err)
		}
		return s, nil
	}
	if _, err := w("auth/approle/role/keyway", map[string]any{"token_policies": "reader", "token_ttl": "1h"}); err != nil {
		return err
	}
	s, err := v.Root.Logical().ReadWithContext(ctx, "auth/approle/role/keyway/role-id")
	if err != nil {
		return fmt.Errorf("testenv: role-id: %w", err)
	}
	v.RoleID, _ = s.Data["role_id"].(string)
	s, err = w("auth/approle/role/keyway/secret-id", nil)
	if err != nil {
		return err
	}
	v.SecretID, _ = s.Data["secret_id"].(string)
	v.Username, v.Password = "keyway", "userpass-password"
	if _, err := w("auth/userpass/users/keyway", map[string]any{"password": v.Password, "token_policies": "reader"}); err != nil {
		return err
	}
	return v.setupKubernetes(ctx, w)
}

// setupKubernetes points Vault's Kubernetes auth method at the test kube-apiserver: a
// reviewer service account allowed to create TokenReviews, and role "keyway" bound to the
// service account default/keyway.
func (v *Vault) setupKubernetes(ctx context.Context, w func(string, map[string]any) (*vaultapi.Secret, error)) error {
	cs, err := kubernetes.NewForConfig(v.env.Config)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	for _, sa := range []struct{ ns, name string }{{"kube-system", "vault-reviewer"}, {"default", "keyway"}} {
		_, err := cs.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("testenv: service account %s/%s: %w", sa.ns, sa.name, err)
		}
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: "kube-system"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: cluster role binding: %w", err)
	}
	token := func(ns, name string) (string, error) {
		exp := int64(3600)
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("testenv: token for %s/%s: %w", ns, name, err)
		}
		return tr.Status.Token, nil
	}
	reviewer, err := token("kube-system", "vault-reviewer")
	if err != nil {
		return err
	}
	if _, err := w("auth/kubernetes/config", map[string]any{
		"kubernetes_host":    v.env.Config.Host,
		"kubernetes_ca_cert": string(v.env.Config.CAData),
		"token_reviewer_jwt": reviewer,
	}); err != nil {
		return err
	}
	if _, err := w("auth/kubernetes/role/keyway", map[string]any{
		"bound_service_account_names":      "keyway",
		"bound_service_account_namespaces": "default",
		"token_policies":                   "reader",
		"token_ttl":                        "1h",
	}); err != nil {
		return err
	}
	app, err := token("default", "keyway")
	if err != nil {
		return err
	}
	// The JWT method validates the same service-account token offline, with the API
	// server's signing key: a real OIDC-style login without an identity provider.
	pub, err := os.ReadFile(filepath.Join(v.env.dir, "sa.pub"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if _, err := w("auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(pub)},
		"bound_issuer":           "https://kubernetes.default.svc",
	}); err != nil {
		return err
	}
	if _, err := w("auth/jwt/role/keyway", map[string]any{
		"role_type":       "jwt",
		"user_claim":      "sub",
		"bound_subject":   "system:serviceaccount:default:keyway",
		"bound_audiences": []string{"https://kubernetes.default.svc"},
		"token_policies":  "reader",
		"token_ttl":       "1h",
	}); err != nil {
		return err
	}
	v.KubernetesJWTFile = filepath.Join(v.env.dir, "vault", "keyway-sa.jwt")
	return os.WriteFile(v.KubernetesJWTFile, []byte(app), 0o600)
}

// Stop stops the Vault process (the Env's Stop also does).
func (v *Vault) Stop() error {
	return v.env.stopProcess("vault")
}
