package externalsecrets

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/gcpsm"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// gcpStore maps a gcpsm provider onto Secret Manager settings: a service-account key from a
// Secret, or the controller's Application Default Credentials when none is given. The
// endpoint, its TLS roots and where keys are exchanged for tokens are the operator's.
func (s *Syncer) gcpStore(ctx context.Context, what, ns string, g *esv1.GCPSMProvider) (*storeConfig, error) {
	if g.ProjectID == "" {
		return nil, refusal{what + ": gcpsm.projectID is required"}
	}
	if strings.ContainsAny(g.ProjectID, "/ ") {
		return nil, refusal{what + ": gcpsm.projectID is a name, without '/'"}
	}
	if g.Location != "" {
		if _, err := gcpsm.ParseLocation(g.Location); err != nil {
			return nil, refusal{fmt.Sprintf("%s: gcpsm.%v", what, err)}
		}
	}
	set := providers.Settings{}
	for k, v := range map[string]string{gcpsm.SettingEndpoint: s.opts.GCPEndpoint, gcpsm.SettingCAFile: s.opts.GCPCAFile, gcpsm.SettingTokenURL: s.opts.GCPTokenURL} {
		if v != "" {
			set[k] = v
		}
	}
	switch a := g.Auth; {
	case a.SecretRef != nil:
		key, err := s.secretValue(ctx, what, ns, a.SecretRef.SecretAccessKey, "auth.secretRef.secretAccessKeySecretRef")
		if err != nil {
			return nil, err
		}
		set[gcpsm.SettingCredentialsJSON] = key
	case a.WorkloadIdentity != nil:
		return nil, refusal{what + ": gcpsm auth.workloadIdentity is not supported: use auth.secretRef, or a ClusterSecretStore without auth (the controller's own GKE identity)"}
	default:
		if err := s.ambient(what, ns, "gcpsm.auth"); err != nil {
			return nil, err
		}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{"gcpsm": set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: "gcpsm", settings: set, project: g.ProjectID, location: g.Location}, nil
}

// gcpsmAdapter maps spec.provider.gcpsm.
var gcpsmAdapter = storeAdapter{
	name:  "gcpsm",
	names: func(p *esv1.SecretStoreProvider) bool { return p.GCPSM != nil },
	resolve: func(s *Syncer, ctx context.Context, what, ns string, p *esv1.SecretStoreProvider) (*storeConfig, error) {
		return s.gcpStore(ctx, what, ns, p.GCPSM)
	},
}
