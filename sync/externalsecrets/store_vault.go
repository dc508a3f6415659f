package externalsecrets

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/vault"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// serverAllowed reports whether a namespaced SecretStore may name this Vault address: it
// must start with one of the operator's VaultServers, at a segment boundary.
func (s *Syncer) serverAllowed(server string) bool {
	for _, p := range s.opts.VaultServers {
		p = strings.TrimRight(p, "/")
		if server == p || strings.HasPrefix(server, p+"/") {
			return true
		}
	}
	return false
}

func (s *Syncer) vaultStore(ctx context.Context, what, ns string, v *esv1.VaultProvider) (*storeConfig, error) {
	if ns != "" && !s.serverAllowed(strings.TrimRight(v.Server, "/")) {
		return nil, refusal{fmt.Sprintf("%s: vault.server %q is not one the operator allows SecretStores to use (--allow-vault-server); a ClusterSecretStore may name any", what, v.Server)}
	}
	mount := "secret"
	if v.Path != nil && *v.Path != "" {
		mount = strings.Trim(*v.Path, "/")
	}
	kv := "2"
	if v.Version == "v1" {
		kv = "1"
	}
	set := providers.Settings{vault.SettingAddress: v.Server, vault.SettingKVVersions: mount + "=" + kv, vault.SettingRenew: "true"}
	if v.Namespace != nil {
		set[vault.SettingNamespace] = *v.Namespace
	}
	secretValue := func(sel esv1.SecretKeySelector, field string) (string, error) {
		return s.secretValue(ctx, what, ns, sel, field)
	}

	a := v.Auth
	switch {
	case a == nil:
		return nil, refusal{what + ": vault.auth is required"}
	case a.TokenSecretRef != nil:
		tok, err := secretValue(*a.TokenSecretRef, "auth.tokenSecretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingAuthMethod], set[vault.SettingToken] = "token", tok
	case a.AppRole != nil:
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount] = "approle", a.AppRole.Path
		set[vault.SettingRoleID] = a.AppRole.RoleID
		if a.AppRole.RoleRef != nil {
			id, err := secretValue(*a.AppRole.RoleRef, "auth.appRole.roleRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingRoleID] = id
		}
		sid, err := secretValue(a.AppRole.SecretRef, "auth.appRole.secretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingSecretID] = sid
	case a.Kubernetes != nil:
		k := a.Kubernetes
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount], set[vault.SettingRole] = "kubernetes", k.Path, k.Role
		switch { // the service account first, as ESO
		case k.ServiceAccountRef != nil:
			jwt, err := s.serviceAccountToken(ctx, what, ns, *k.ServiceAccountRef)
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		case k.SecretRef != nil:
			jwt, err := secretValue(*k.SecretRef, "auth.kubernetes.secretRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		default:
			return nil, refusal{what + ": auth.kubernetes needs serviceAccountRef or secretRef"}
		}
	case a.Jwt != nil:
		j := a.Jwt
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount], set[vault.SettingRole] = "jwt", j.Path, j.Role
		switch {
		case j.SecretRef != nil:
			jwt, err := secretValue(*j.SecretRef, "auth.jwt.secretRef")
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		case j.KubernetesServiceAccountToken != nil:
			sa := j.KubernetesServiceAccountToken.ServiceAccountRef
			if aud := j.KubernetesServiceAccountToken.Audiences; aud != nil {
				sa.Audiences = append(sa.Audiences, *aud...)
			}
			if len(sa.Audiences) == 0 {
				sa.Audiences = []string{"vault"} // ESO's default audience
			}
			jwt, err := s.serviceAccountToken(ctx, what, ns, sa)
			if err != nil {
				return nil, err
			}
			set[vault.SettingJWT] = jwt
		default:
			return nil, refusal{what + ": auth.jwt needs secretRef or kubernetesServiceAccountToken"}
		}
	case a.UserPass != nil:
		u := a.UserPass
		if u.Username == "" {
			return nil, refusal{what + ": auth.userPass.username is required"}
		}
		pass, err := secretValue(u.SecretRef, "auth.userPass.secretRef")
		if err != nil {
			return nil, err
		}
		set[vault.SettingAuthMethod], set[vault.SettingAuthMount] = "userpass", u.Path
		set[vault.SettingUsername], set[vault.SettingPassword] = u.Username, pass
	default:
		return nil, refusal{what + ": vault.auth needs tokenSecretRef, appRole, kubernetes, jwt or userPass"}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{"vault": set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: "vault", settings: set, mount: mount}, nil
}

// vaultAdapter maps spec.provider.vault.
var vaultAdapter = storeAdapter{
	name:  "vault",
	names: func(p *esv1.SecretStoreProvider) bool { return p.Vault != nil },
	resolve: func(s *Syncer, ctx context.Context, what, ns string, p *esv1.SecretStoreProvider) (*storeConfig, error) {
		return s.vaultStore(ctx, what, ns, p.Vault)
	},
}
