package vault

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyway-dev/keyway/providers"
)

// Setting names. cmd/keyway maps flags, KEYWAY_VAULT_*, VAULT_* and AVP_* onto them.
const (
	SettingAddress           = "address"
	SettingNamespace         = "namespace"
	SettingAllowedNamespaces = "allowed-namespaces" // namespaces references may name; "*" for any
	SettingAuthMethod        = "auth-method"        // token, approle, kubernetes, userpass, jwt
	SettingAuthMount         = "auth-mount"         // mount path of the auth method (default: its name)
	SettingToken             = "token"
	SettingTokenFile         = "token-file"
	SettingRoleID            = "role-id"
	SettingRoleIDFile        = "role-id-file"
	SettingSecretID          = "secret-id"
	SettingSecretIDFile      = "secret-id-file"
	SettingRole              = "role"     // kubernetes and jwt
	SettingJWTFile           = "jwt-file" // kubernetes (service-account token) and jwt
	SettingUsername          = "username"
	SettingPassword          = "password"
	SettingPasswordFile      = "password-file"
	SettingKVVersion         = "kv-version"  // fallback KV version: 1 or 2 (default 2)
	SettingKVVersions        = "kv-versions" // per mount, "secret=2,legacy=1"; skips detection
	SettingPathValidation    = "path-validation"
	SettingCACert            = "ca-cert"
	SettingCAPath            = "ca-path"
	SettingClientCert        = "client-cert"
	SettingClientKey         = "client-key"
	SettingTLSServerName     = "tls-server-name"
	SettingSkipVerify        = "skip-verify"
	SettingMaxInFlight       = "max-in-flight"
	SettingRequestTimeout    = "request-timeout"
	SettingMaxRetries        = "max-retries"
	SettingRenew             = "renew" // keep a renewable token renewed (long-running processes)
)

var known = []string{
	SettingAddress, SettingNamespace, SettingAllowedNamespaces, SettingAuthMethod, SettingAuthMount,
	SettingToken, SettingTokenFile, SettingRoleID, SettingRoleIDFile, SettingSecretID, SettingSecretIDFile,
	SettingRole, SettingJWTFile, SettingUsername, SettingPassword, SettingPasswordFile,
	SettingKVVersion, SettingKVVersions, SettingPathValidation,
	SettingCACert, SettingCAPath, SettingClientCert, SettingClientKey, SettingTLSServerName, SettingSkipVerify,
	SettingMaxInFlight, SettingRequestTimeout, SettingMaxRetries, SettingRenew,
}

// DefaultKubernetesTokenPath is where a pod's service-account token is mounted.
const DefaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

type options struct {
	address, namespace string
	allowedNamespaces  []string
	method, mount      string
	s                  providers.Settings
	kvDefault          int
	kvByMount          map[string]int
	pathValidation     *regexp.Regexp
	maxInFlight        int
	timeout            time.Duration
	maxRetries         int
	skipVerify         bool
	renew              bool
}

func parseSettings(s providers.Settings) (*options, error) {
	for k := range s {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown setting %q", k)
		}
	}
	o := &options{s: s, address: s[SettingAddress], namespace: s[SettingNamespace], kvDefault: 2, maxInFlight: 32, timeout: 30 * time.Second, maxRetries: 3}
	if o.address == "" {
		return nil, fmt.Errorf("%w: setting %q is required (--vault-address, VAULT_ADDR)", providers.ErrNotConfigured, SettingAddress)
	}
	o.allowedNamespaces = s.List(SettingAllowedNamespaces)
	o.method = strings.ToLower(s[SettingAuthMethod])
	switch o.method {
	case "":
		o.method = "token"
	case "k8s":
		o.method = "kubernetes"
	case "oidc":
		o.method = "jwt"
	case "token", "approle", "kubernetes", "userpass", "jwt":
	default:
		return nil, fmt.Errorf("setting %q: %q is not token, approle, kubernetes, userpass or jwt", SettingAuthMethod, s[SettingAuthMethod])
	}
	o.mount = strings.Trim(s[SettingAuthMount], "/")
	if o.mount == "" {
		o.mount = o.method
	}
	if v := s[SettingKVVersion]; v != "" {
		n, err := kvVersion(v)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %w", SettingKVVersion, err)
		}
		o.kvDefault = n
	}
	o.kvByMount = map[string]int{}
	for _, item := range s.List(SettingKVVersions) {
		mount, v, ok := strings.Cut(item, "=")
		n, err := kvVersion(v)
		if !ok || err != nil || strings.Trim(mount, "/") == "" {
			return nil, fmt.Errorf("setting %q: %q is not MOUNT=1 or MOUNT=2", SettingKVVersions, item)
		}
		o.kvByMount[strings.Trim(mount, "/")+"/"] = n
	}
	if v := s[SettingPathValidation]; v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %v", SettingPathValidation, err)
		}
		o.pathValidation = re
	}
	for _, n := range []struct {
		key string
		dst *int
		min int
	}{{SettingMaxInFlight, &o.maxInFlight, 1}, {SettingMaxRetries, &o.maxRetries, 0}} {
		if v := s[n.key]; v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i < n.min {
				return nil, fmt.Errorf("setting %q: %q is not a number ≥ %d", n.key, v, n.min)
			}
			*n.dst = i
		}
	}
	if v := s[SettingRequestTimeout]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("setting %q: %q is not a positive duration", SettingRequestTimeout, v)
		}
		o.timeout = d
	}
	for key, dst := range map[string]*bool{SettingSkipVerify: &o.skipVerify, SettingRenew: &o.renew} {
		if v := s[key]; v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("setting %q: %q is not true or false", key, v)
			}
			*dst = b
		}
	}
	return o, nil
}

func kvVersion(v string) (int, error) {
	switch strings.TrimPrefix(strings.TrimSpace(v), "v") {
	case "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("%q is not 1 or 2", v)
}
