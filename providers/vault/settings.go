package vault

import (
	"fmt"
	"regexp"
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
	SettingJWT               = "jwt"      // the token itself, for callers that request one (the syncer)
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
	SettingRole, SettingJWTFile, SettingJWT, SettingUsername, SettingPassword, SettingPasswordFile,
	SettingKVVersion, SettingKVVersions, SettingPathValidation,
	SettingCACert, SettingCAPath, SettingClientCert, SettingClientKey, SettingTLSServerName, SettingSkipVerify,
	SettingMaxInFlight, SettingRequestTimeout, SettingMaxRetries, SettingRenew,
}

// defaultKubernetesTokenPath is where a pod's service-account token is mounted.
const defaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

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

// parseSettings is validate plus what opening a client needs: an address.
func parseSettings(s providers.Settings) (*options, error) {
	o, err := validate(s)
	if err != nil {
		return nil, err
	}
	if o.address == "" {
		return nil, fmt.Errorf("%w: setting %q is required (--vault-address, VAULT_ADDR)", providers.ErrNotConfigured, SettingAddress)
	}
	return o, nil
}

// validate reads every setting without I/O; files named by settings are read at login.
func validate(s providers.Settings) (*options, error) {
	if err := s.Check(known...); err != nil {
		return nil, err
	}
	o := &options{s: s, address: s[SettingAddress], namespace: s[SettingNamespace]}
	o.allowedNamespaces = s.List(SettingAllowedNamespaces)
	method, err := s.OneOf(SettingAuthMethod, "token", "token", "approle", "kubernetes", "userpass", "jwt", "k8s", "oidc")
	if err != nil {
		return nil, err
	}
	o.method = map[string]string{"k8s": "kubernetes", "oidc": "jwt"}[method]
	if o.method == "" {
		o.method = method
	}
	o.mount = strings.Trim(s[SettingAuthMount], "/")
	if o.mount == "" {
		o.mount = o.method
	}
	o.kvDefault = 2
	if v := s[SettingKVVersion]; v != "" {
		if o.kvDefault, err = kvVersion(v); err != nil {
			return nil, &providers.SettingError{Key: SettingKVVersion, Reason: err.Error()}
		}
	}
	o.kvByMount = map[string]int{}
	for _, item := range s.List(SettingKVVersions) {
		mount, v, ok := strings.Cut(item, "=")
		n, err := kvVersion(v)
		if !ok || err != nil || strings.Trim(mount, "/") == "" {
			return nil, &providers.SettingError{Key: SettingKVVersions, Reason: fmt.Sprintf("%q is not MOUNT=1 or MOUNT=2", item)}
		}
		o.kvByMount[strings.Trim(mount, "/")+"/"] = n
	}
	if v := s[SettingPathValidation]; v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, &providers.SettingError{Key: SettingPathValidation, Reason: err.Error()}
		}
		o.pathValidation = re
	}
	if o.maxInFlight, err = s.Int(SettingMaxInFlight, 32, 1); err != nil {
		return nil, err
	}
	if o.maxRetries, err = s.Int(SettingMaxRetries, 3, 0); err != nil {
		return nil, err
	}
	if o.timeout, err = s.Duration(SettingRequestTimeout, 30*time.Second); err != nil {
		return nil, err
	}
	if o.skipVerify, err = s.Bool(SettingSkipVerify, false); err != nil {
		return nil, err
	}
	if o.renew, err = s.Bool(SettingRenew, false); err != nil {
		return nil, err
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
