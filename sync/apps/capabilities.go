package apps

import (
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
)

// capsTTL is how long a cluster's version and API versions are reused; capsRetry how
// soon discovery is tried again after it failed.
const (
	capsTTL   = 10 * time.Minute
	capsRetry = time.Minute
)

// capabilities is a cluster's version and the API versions it serves, as Argo CD hands them
// to Helm (.Capabilities.KubeVersion, .Capabilities.APIVersions) and to the build
// environment (KUBE_VERSION, KUBE_API_VERSIONS): read through discovery at most every
// capsTTL.
type capabilities struct {
	dc discovery.DiscoveryInterface

	mu          sync.Mutex
	at          time.Time
	version     string
	apiVersions []string
}

// get returns the cluster's version ("1.37.2") and its group/version and
// group/version/Kind entries. Discovery runs outside the lock, so renders for the cluster
// never wait on it; after a discovery error the last answer (or none) is used and
// discovery is tried again a minute later, not on every render.
func (c *capabilities) get() (string, []string) {
	c.mu.Lock()
	version, apis, fresh := c.version, c.apiVersions, time.Since(c.at) < capsTTL
	if c.dc == nil || fresh {
		c.mu.Unlock()
		return version, apis
	}
	c.at = time.Now().Add(-capsTTL + capsRetry) // others keep the last answer meanwhile
	c.mu.Unlock()
	v, err := c.dc.ServerVersion()
	if err != nil {
		return version, apis
	}
	// Aggregated APIs that do not answer leave the rest of the list usable.
	_, lists, _ := c.dc.ServerGroupsAndResources()
	var found []string
	for _, l := range lists {
		found = append(found, l.GroupVersion)
		for _, r := range l.APIResources {
			if !strings.Contains(r.Name, "/") {
				found = append(found, l.GroupVersion+"/"+r.Kind)
			}
		}
	}
	slices.Sort(found)
	version, apis = serverVersion(v), slices.Compact(found)
	c.mu.Lock()
	c.version, c.apiVersions, c.at = version, apis, time.Now()
	c.mu.Unlock()
	return version, apis
}

// serverVersion is the server's version as a semantic version Helm can parse: its git
// version, else major.minor.0 — and "" (Helm's default) for a build that says neither.
func serverVersion(v *version.Info) string {
	if s := strings.TrimPrefix(v.GitVersion, "v"); s != "" {
		if _, err := utilversion.ParseSemantic(s); err == nil {
			return s
		}
	}
	minor := strings.TrimSuffix(v.Minor, "+")
	if s := v.Major + "." + minor + ".0"; v.Major != "" && minor != "" {
		if _, err := utilversion.ParseSemantic(s); err == nil {
			return s
		}
	}
	return ""
}

// buildEnv is Argo CD's build environment for an application at revision.
func buildEnv(a *v1alpha1.Application, revision, kubeVersion string, apiVersions []string) map[string]string {
	short := revision
	if len(short) > 7 {
		short = short[:7]
	}
	return map[string]string{
		"ARGOCD_APP_NAME":                   a.Name,
		"ARGOCD_APP_NAMESPACE":              a.Spec.Destination.Namespace,
		"ARGOCD_APP_REVISION":               revision,
		"ARGOCD_APP_REVISION_SHORT":         short,
		"ARGOCD_APP_SOURCE_PATH":            a.Spec.Source.Path,
		"ARGOCD_APP_SOURCE_REPO_URL":        a.Spec.Source.RepoURL,
		"ARGOCD_APP_SOURCE_TARGET_REVISION": a.Spec.Source.TargetRevision,
		"KUBE_VERSION":                      kubeVersion,
		"KUBE_API_VERSIONS":                 strings.Join(apiVersions, ","),
	}
}

// envsubst substitutes $VAR and ${VAR} from env as Argo CD does: an unknown variable is
// empty, and $$ is a literal $.
func envsubst(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		return env[name]
	})
}
