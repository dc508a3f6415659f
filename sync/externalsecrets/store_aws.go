package externalsecrets

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/providers"
	"github.com/keyway-dev/keyway/providers/awssm"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// awsStore maps an aws provider onto Secrets Manager or Parameter Store settings: static
// keys from a Secret, or the SDK's default chain (IRSA) when none are given; role and
// externalID assume a role on top.
func (s *Syncer) awsStore(ctx context.Context, what, ns string, a *esv1.AWSProvider) (*storeConfig, error) {
	backend := "awssm"
	switch a.Service {
	case "SecretsManager":
	case "ParameterStore":
		backend = "awsssm"
	default:
		return nil, refusal{fmt.Sprintf("%s: aws.service %q is not SecretsManager or ParameterStore", what, a.Service)}
	}
	set := providers.Settings{awssm.SettingRegion: a.Region}
	if a.Role != "" {
		set[awssm.SettingRoleARN] = a.Role
	}
	if a.ExternalID != "" {
		set[awssm.SettingExternalID] = a.ExternalID
	}
	if s.opts.AWSEndpoint != "" {
		set[awssm.SettingEndpoint] = s.opts.AWSEndpoint
	}
	if a.Auth.SecretRef == nil && a.Auth.JWTAuth == nil {
		if err := s.ambient(what, ns, "aws.auth"); err != nil {
			return nil, err
		}
	}
	if j := a.Auth.JWTAuth; j != nil {
		if a.Auth.SecretRef != nil {
			return nil, refusal{what + ": aws.auth: give secretRef or jwt, not both"}
		}
		if j.ServiceAccountRef == nil {
			return nil, refusal{what + ": aws.auth.jwt needs serviceAccountRef"}
		}
		role, tok, err := s.webIdentity(ctx, what, ns, *j.ServiceAccountRef)
		if err != nil {
			return nil, err
		}
		set[awssm.SettingWebIdentityRoleARN], set[awssm.SettingWebIdentityToken] = role, tok
	}
	if ref := a.Auth.SecretRef; ref != nil {
		id, err := s.secretValue(ctx, what, ns, ref.AccessKeyID, "auth.secretRef.accessKeyIDSecretRef")
		if err != nil {
			return nil, err
		}
		key, err := s.secretValue(ctx, what, ns, ref.SecretAccessKey, "auth.secretRef.secretAccessKeySecretRef")
		if err != nil {
			return nil, err
		}
		set[awssm.SettingAccessKeyID], set[awssm.SettingSecretAccessKey] = id, key
		if ref.SessionToken != nil {
			tok, err := s.secretValue(ctx, what, ns, *ref.SessionToken, "auth.secretRef.sessionTokenSecretRef")
			if err != nil {
				return nil, err
			}
			set[awssm.SettingSessionToken] = tok
		}
	}
	if err := s.opts.Backends.Validate(map[string]providers.Settings{backend: set}); err != nil {
		return nil, refusal{fmt.Sprintf("%s: %v", what, err)}
	}
	return &storeConfig{backend: backend, settings: set}, nil
}

// IRSA's annotations on a service account: the role its tokens may assume, and the audience
// those tokens are for.
const (
	annotationRoleARN  = "eks.amazonaws.com/role-arn"
	annotationAudience = "eks.amazonaws.com/audience"
)

// webIdentity is ESO's aws jwt auth: the service account's IRSA role (its
// eks.amazonaws.com/role-arn annotation) and a token requested for it, to be exchanged with
// STS AssumeRoleWithWebIdentity. The account is the store's namespace's (a ClusterSecretStore
// names one).
func (s *Syncer) webIdentity(ctx context.Context, what, ns string, sa esv1.ServiceAccountSelector) (role, token string, err error) {
	from, err := refNamespace(what, ns, sa.Namespace, "serviceAccountRef", "service accounts")
	if err != nil {
		return "", "", err
	}
	acct, err := s.kube.CoreV1().ServiceAccounts(from).Get(ctx, sa.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", refusal{fmt.Sprintf("%s: service account %s/%s: %s", what, from, sa.Name, redact.APIOutcome(err))}
	}
	if role = acct.Annotations[annotationRoleARN]; role == "" {
		return "", "", refusal{fmt.Sprintf("%s: service account %s/%s has no %s annotation (the role its tokens assume)", what, from, sa.Name, annotationRoleARN)}
	}
	if len(sa.Audiences) == 0 {
		aud := "sts.amazonaws.com"
		if acct.Annotations[annotationAudience] != "" {
			aud = acct.Annotations[annotationAudience]
		}
		sa.Audiences = []string{aud}
	}
	token, err = s.serviceAccountToken(ctx, what, ns, sa)
	return role, token, err
}

// awsAdapter maps spec.provider.aws.
var awsAdapter = storeAdapter{
	name:  "aws",
	names: func(p *esv1.SecretStoreProvider) bool { return p.AWS != nil },
	resolve: func(s *Syncer, ctx context.Context, what, ns string, p *esv1.SecretStoreProvider) (*storeConfig, error) {
		return s.awsStore(ctx, what, ns, p.AWS)
	},
}
