package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/awssm"
	"github.com/keyway-dev/keyway/providers/file"
	"github.com/keyway-dev/keyway/providers/gcpsm"
	"github.com/keyway-dev/keyway/providers/vault"
)

// registry lists every backend this binary knows.
func registry() *providers.Registry {
	return providers.NewRegistry(file.Provider{}, vault.Provider{}, awssm.Provider{}, awssm.SSMProvider{}, gcpsm.Provider{})
}

// cloudFlags are the AWS and GCP settings with a flag of their own; the rest go through
// --setting BACKEND.KEY=VALUE or the config file's awssm:/gcpsm: sections. Credentials come
// from each SDK's default chain (AWS_* variables, profiles, IRSA, IMDS; Application Default
// Credentials, workload identity) unless set here.
type cloudFlags struct {
	AWSRegion, AWSProfile, AWSRoleARN, AWSExternalID, AWSEndpoint string
	GCPEndpoint, GCPCredentialsFile                               string
	Settings                                                      []string
}

func (c *cloudFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.AWSRegion, "aws-region", "", "AWS region for Secrets Manager (an ARN's own region wins)")
	fs.StringVar(&c.AWSProfile, "aws-profile", "", "AWS shared-config profile")
	fs.StringVar(&c.AWSRoleARN, "aws-role-arn", "", "IAM role to assume for Secrets Manager reads")
	fs.StringVar(&c.AWSExternalID, "aws-external-id", "", "external id for --aws-role-arn")
	fs.StringVar(&c.AWSEndpoint, "aws-endpoint", "", "Secrets Manager endpoint override (VPC endpoints)")
	fs.StringVar(&c.GCPEndpoint, "gcp-endpoint", "", "Secret Manager endpoint override (host:port)")
	fs.StringVar(&c.GCPCredentialsFile, "gcp-credentials-file", "", "service-account key file (default: Application Default Credentials)")
	fs.StringSliceVar(&c.Settings, "setting", nil, "any backend setting as BACKEND.KEY=VALUE (repeatable), e.g. awssm.max-attempts=8")
}

// cloudSettings assembles awssm and gcpsm settings: config sections, then --setting, then
// the named flags.
func cloudSettings(fs *pflag.FlagSet, c *cloudFlags, sections map[string]map[string]string) (map[string]providers.Settings, error) {
	out := map[string]providers.Settings{"awssm": {}, "gcpsm": {}}
	for backend := range out {
		for k, v := range sections[backend] {
			out[backend][k] = v
		}
	}
	for _, kv := range c.Settings {
		key, val, ok := strings.Cut(kv, "=")
		backend, k, ok2 := strings.Cut(key, ".")
		if !ok || !ok2 || k == "" {
			return nil, usagef("--setting %q: want BACKEND.KEY=VALUE", kv)
		}
		if backend == "vault" || backend == "file" {
			return nil, usagef("--setting %q: use --vault-setting or the file flags for %s", kv, backend)
		}
		if _, known := out[backend]; !known {
			return nil, usagef("--setting %q: unknown backend %q", kv, backend)
		}
		out[backend][k] = val
	}
	for flag, dst := range map[string][2]string{
		"aws-region": {"awssm", awssm.SettingRegion}, "aws-profile": {"awssm", awssm.SettingProfile},
		"aws-role-arn": {"awssm", awssm.SettingRoleARN}, "aws-external-id": {"awssm", awssm.SettingExternalID},
		"aws-endpoint": {"awssm", awssm.SettingEndpoint},
		"gcp-endpoint": {"gcpsm", gcpsm.SettingEndpoint}, "gcp-credentials-file": {"gcpsm", gcpsm.SettingCredentialsFile},
	} {
		if f := fs.Lookup(flag); f != nil && flagSetBy(f) {
			out[dst[0]][dst[1]] = f.Value.String()
		}
	}
	// SSM Parameter Store shares the AWS settings.
	out["awsssm"] = maps.Clone(out["awssm"])
	return out, nil
}

// vaultFlags are the Vault settings common enough for their own flag; every other setting
// goes through --vault-setting KEY=VALUE or the config file's vault: section.
type vaultFlags struct {
	Address, Namespace, AuthMethod, AuthMount, Role, TokenFile, JWTFile, KVVersion, CACert string
	Settings                                                                               []string
}

func (v *vaultFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&v.Address, "vault-address", "", "Vault address (VAULT_ADDR)")
	fs.StringVar(&v.Namespace, "vault-namespace", "", "Vault Enterprise namespace (VAULT_NAMESPACE)")
	fs.StringVar(&v.AuthMethod, "vault-auth-method", "", "token, approle, kubernetes, userpass or jwt (AVP_AUTH_TYPE); default token")
	fs.StringVar(&v.AuthMount, "vault-auth-mount", "", "mount path of the auth method (default: its name)")
	fs.StringVar(&v.Role, "vault-role", "", "role for kubernetes and jwt login (AVP_K8S_ROLE)")
	fs.StringVar(&v.TokenFile, "vault-token-file", "", "file holding a Vault token (default ~/.vault-token; VAULT_TOKEN also works)")
	fs.StringVar(&v.JWTFile, "vault-jwt-file", "", "service-account token or JWT for kubernetes/jwt login (AVP_K8S_TOKEN_PATH)")
	fs.StringVar(&v.KVVersion, "vault-kv-version", "", "KV version when detection is not permitted: 1 or 2 (AVP_KV_VERSION)")
	fs.StringVar(&v.CACert, "vault-ca-cert", "", "CA certificate file for Vault's TLS (VAULT_CACERT)")
	fs.StringSliceVar(&v.Settings, "vault-setting", nil, "any other Vault setting as KEY=VALUE (repeatable): role-id-file, secret-id-file, username,\npassword-file, kv-versions, path-validation, ca-path, client-cert, client-key, tls-server-name,\nskip-verify, max-in-flight, request-timeout, max-retries, allowed-namespaces")
}

// envSettings maps the Vault CLI's and argocd-vault-plugin's environment onto settings, so a
// repo-server configured for AVP works by swapping the binary.
var envSettings = []struct{ env, setting string }{
	{"VAULT_ADDR", vault.SettingAddress},
	{"VAULT_NAMESPACE", vault.SettingNamespace},
	{"VAULT_TOKEN", vault.SettingToken},
	{"VAULT_CACERT", vault.SettingCACert},
	{"VAULT_CAPATH", vault.SettingCAPath},
	{"VAULT_CLIENT_CERT", vault.SettingClientCert},
	{"VAULT_CLIENT_KEY", vault.SettingClientKey},
	{"VAULT_TLS_SERVER_NAME", vault.SettingTLSServerName},
	{"VAULT_SKIP_VERIFY", vault.SettingSkipVerify},
	{"VAULT_MAX_RETRIES", vault.SettingMaxRetries},
	{"AVP_AUTH_TYPE", vault.SettingAuthMethod},
	{"AVP_ROLE_ID", vault.SettingRoleID},
	{"AVP_SECRET_ID", vault.SettingSecretID},
	{"AVP_K8S_ROLE", vault.SettingRole},
	{"AVP_K8S_MOUNT_PATH", vault.SettingAuthMount},
	{"AVP_MOUNT_PATH", vault.SettingAuthMount},
	{"AVP_K8S_TOKEN_PATH", vault.SettingJWTFile},
	{"AVP_KV_VERSION", vault.SettingKVVersion},
	{"AVP_PATH_VALIDATION", vault.SettingPathValidation},
	{"AVP_USERNAME", vault.SettingUsername},
	{"AVP_PASSWORD", vault.SettingPassword},
}

// vaultSettings assembles the Vault settings, lowest precedence first: the config file's
// vault: section, the environment (VAULT_*, AVP_*), --vault-setting, then the named flags
// (given on the command line or as KEYWAY_VAULT_*).
func vaultSettings(fs *pflag.FlagSet, v *vaultFlags, section map[string]string, env lookupEnv) (providers.Settings, error) {
	s := providers.Settings{}
	for k, val := range section {
		s[k] = val
	}
	for _, m := range envSettings {
		if val, ok := env(m.env); ok && val != "" {
			if m.setting == vault.SettingAuthMount {
				val = strings.TrimPrefix(strings.Trim(val, "/"), "auth/")
			}
			s[m.setting] = val
		}
	}
	for _, kv := range v.Settings {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--vault-setting %q: want KEY=VALUE", kv)
		}
		s[k] = val
	}
	for flag, setting := range map[string]string{
		"vault-address": vault.SettingAddress, "vault-namespace": vault.SettingNamespace,
		"vault-auth-method": vault.SettingAuthMethod, "vault-auth-mount": vault.SettingAuthMount,
		"vault-role": vault.SettingRole, "vault-token-file": vault.SettingTokenFile,
		"vault-jwt-file": vault.SettingJWTFile, "vault-kv-version": vault.SettingKVVersion,
		"vault-ca-cert": vault.SettingCACert,
	} {
		if f := fs.Lookup(flag); f != nil && flagSetBy(f) {
			s[setting] = f.Value.String()
		}
	}
	method := strings.ToLower(s[vault.SettingAuthMethod])
	if (method == "" || method == "token") && s[vault.SettingToken] == "" && s[vault.SettingTokenFile] == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".vault-token"); fileExists(p) {
				s[vault.SettingTokenFile] = p
			}
		}
	}
	return s, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// providerSections are the config file's per-backend sections (vault: {address: …}).
var providerSections = []string{"vault", "awssm", "gcpsm"}

func sectionSettings(raw any, name string) (map[string]string, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("section %q must be a mapping of settings", name)
	}
	out := map[string]string{}
	for k, v := range m {
		switch t := v.(type) {
		case []any:
			var items []string
			for _, e := range t {
				items = append(items, fmt.Sprint(e))
			}
			out[k] = strings.Join(items, ",")
		default:
			out[k] = fmt.Sprint(t)
		}
	}
	return out, nil
}

func isProviderSection(key string) bool { return slices.Contains(providerSections, key) }
