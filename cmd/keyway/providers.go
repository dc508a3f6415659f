package main

import (
	"errors"
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
	fs.StringSliceVar(&c.Settings, "setting", nil, "any backend setting as BACKEND.KEY=VALUE (repeatable), e.g. awssm.max-attempts=8, vault.max-in-flight=16; checked at start")
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

// settingFlags is the one table from flags to backend settings; a flag's value overrides
// every other source of the same setting.
var settingFlags = []struct{ flag, backend, setting string }{
	{"secrets-file", "file", file.SettingSecretsFile},
	{"age-identity", "file", file.SettingAgeIdentity},
	{"vault-address", "vault", vault.SettingAddress},
	{"vault-namespace", "vault", vault.SettingNamespace},
	{"vault-auth-method", "vault", vault.SettingAuthMethod},
	{"vault-auth-mount", "vault", vault.SettingAuthMount},
	{"vault-role", "vault", vault.SettingRole},
	{"vault-token-file", "vault", vault.SettingTokenFile},
	{"vault-jwt-file", "vault", vault.SettingJWTFile},
	{"vault-kv-version", "vault", vault.SettingKVVersion},
	{"vault-ca-cert", "vault", vault.SettingCACert},
	{"aws-region", "awssm", awssm.SettingRegion},
	{"aws-profile", "awssm", awssm.SettingProfile},
	{"aws-role-arn", "awssm", awssm.SettingRoleARN},
	{"aws-external-id", "awssm", awssm.SettingExternalID},
	{"aws-endpoint", "awssm", awssm.SettingEndpoint},
	{"gcp-endpoint", "gcpsm", gcpsm.SettingEndpoint},
	{"gcp-credentials-file", "gcpsm", gcpsm.SettingCredentialsFile},
}

// backendSettings assembles every backend's settings, lowest precedence first: the config
// file's sections, the environment (VAULT_*, AVP_*), --setting and --vault-setting, then the
// named flags. Every backend's settings are validated here, when the command starts, so a
// typo is a usage error whether or not a reference uses that backend. Vault is configured
// only when it has an address; SSM Parameter Store shares the AWS settings.
func backendSettings(fs *pflag.FlagSet, v *vaultFlags, c *cloudFlags, sections map[string]map[string]string, env lookupEnv) (map[string]providers.Settings, error) {
	reg := registry()
	out := map[string]providers.Settings{}
	set := func(backend, key, val string) {
		if out[backend] == nil {
			out[backend] = providers.Settings{}
		}
		out[backend][key] = val
	}
	for backend, sec := range sections {
		for k, val := range sec {
			set(backend, k, val)
		}
	}
	for _, m := range envSettings {
		if val, ok := env(m.env); ok && val != "" {
			if m.setting == vault.SettingAuthMount {
				val = strings.TrimPrefix(strings.Trim(val, "/"), "auth/")
			}
			set("vault", m.setting, val)
		}
	}
	for _, kv := range c.Settings {
		key, val, ok := strings.Cut(kv, "=")
		backend, k, ok2 := strings.Cut(key, ".")
		if !ok || !ok2 || k == "" {
			return nil, usagef("--setting %q: want BACKEND.KEY=VALUE", kv)
		}
		if _, known := reg.Lookup(backend); !known {
			msg := fmt.Sprintf("--setting %q: unknown backend %q (known: %s)", kv, backend, strings.Join(reg.Names(), ", "))
			if near := providers.Nearest(backend, reg.Names()); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			return nil, usageError{errors.New(msg)}
		}
		set(backend, k, val)
	}
	for _, kv := range v.Settings {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--vault-setting %q: want KEY=VALUE", kv)
		}
		set("vault", k, val)
	}
	for _, m := range settingFlags {
		// Flags default to empty: a value is one given on the command line, through its
		// KEYWAY_* variable or by a config file.
		if f := fs.Lookup(m.flag); f != nil && (flagSetBy(f) || flagValue(f) != "") {
			set(m.backend, m.setting, flagValue(f))
		}
	}
	if vs := out["vault"]; vs != nil {
		method := strings.ToLower(vs[vault.SettingAuthMethod])
		if (method == "" || method == "token") && vs[vault.SettingToken] == "" && vs[vault.SettingTokenFile] == "" {
			if home, err := os.UserHomeDir(); err == nil {
				if p := filepath.Join(home, ".vault-token"); fileExists(p) {
					vs[vault.SettingTokenFile] = p
				}
			}
		}
	}
	if err := reg.Validate(out); err != nil {
		return nil, usageError{err}
	}
	if out["vault"][vault.SettingAddress] == "" {
		delete(out, "vault")
	}
	if aws, ok := out["awssm"]; ok && out["awsssm"] == nil {
		out["awsssm"] = maps.Clone(aws)
	}
	return out, nil
}

// flagValue is a flag's value as a setting: lists comma-separated.
func flagValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
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
