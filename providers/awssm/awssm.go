package awssm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/providers"
)

// Setting names.
const (
	SettingRegion          = "region"
	SettingProfile         = "profile"
	SettingRoleARN         = "role-arn"
	SettingExternalID      = "external-id"
	SettingEndpoint        = "endpoint"          // VPC endpoint or a test server
	SettingAccessKeyID     = "access-key-id"     // static credentials, for CI and tests
	SettingSecretAccessKey = "secret-access-key" // static credentials, for CI and tests
	SettingSessionToken    = "session-token"
	SettingMaxAttempts     = "max-attempts"
	SettingBatch           = "batch" // "false" turns BatchGetSecretValue off
	// SettingWebIdentityToken is a JWT (a Kubernetes service-account token) exchanged with
	// STS AssumeRoleWithWebIdentity for SettingWebIdentityRoleARN's credentials, held in
	// memory; SettingRoleARN, when set too, is assumed on top (role chaining).
	SettingWebIdentityToken   = "web-identity-token"
	SettingWebIdentityRoleARN = "web-identity-role-arn"
)

var known = []string{SettingRegion, SettingProfile, SettingRoleARN, SettingExternalID, SettingEndpoint, SettingWebIdentityToken, SettingWebIdentityRoleARN,
	SettingAccessKeyID, SettingSecretAccessKey, SettingSessionToken, SettingMaxAttempts, SettingBatch}

// MaxBatch is BatchGetSecretValue's limit on SecretIdList.
const MaxBatch = 20

// API is the part of the Secrets Manager client keyway uses; the SDK client satisfies it.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
	ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// Provider builds Secrets Manager clients.
type Provider struct{}

var _ providers.Provider = Provider{}

// Name implements providers.Provider.
func (Provider) Name() string { return "awssm" }

// Validate implements providers.Provider.
func (Provider) Validate(s providers.Settings) error {
	if err := s.Check(known...); err != nil {
		return err
	}
	if _, err := s.Int(SettingMaxAttempts, 5, 1); err != nil {
		return err
	}
	if _, err := s.Bool(SettingBatch, true); err != nil {
		return err
	}
	if (s[SettingWebIdentityToken] == "") != (s[SettingWebIdentityRoleARN] == "") {
		return fmt.Errorf("settings %q and %q go together", SettingWebIdentityToken, SettingWebIdentityRoleARN)
	}
	if s[SettingWebIdentityToken] != "" && s[SettingAccessKeyID] != "" {
		return fmt.Errorf("setting %q: give static keys or a web identity, not both", SettingWebIdentityToken)
	}
	return nil
}

// staticToken hands stscreds the web identity token it was given.
type staticToken string

func (t staticToken) GetIdentityToken() ([]byte, error) { return []byte(t), nil }

// Open implements providers.Provider. Credentials come from the SDK's default chain
// (environment, shared config and profiles, web identity / IRSA, IMDS) unless static keys are
// set; role-arn assumes a role on top.
func (Provider) Open(ctx context.Context, cfg providers.Config) (providers.Client, error) {
	s := cfg.Settings
	if err := (Provider{}).Validate(s); err != nil {
		return nil, err
	}
	maxAttempts, _ := s.Int(SettingMaxAttempts, 5, 1)
	batch, _ := s.Bool(SettingBatch, true)
	var loadOpts []func(*config.LoadOptions) error
	if r := s[SettingRegion]; r != "" {
		loadOpts = append(loadOpts, config.WithRegion(r))
	}
	if p := s[SettingProfile]; p != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(p))
	}
	if id := s[SettingAccessKeyID]; id != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, s[SettingSecretAccessKey], s[SettingSessionToken])))
	}
	loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer {
		return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
			o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) { so.MaxAttempts = maxAttempts })
		})
	}))
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	stsOptions := func(o *sts.Options) {
		if ep := s[SettingEndpoint]; ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	}
	if tok := s[SettingWebIdentityToken]; tok != "" {
		stsClient := sts.NewFromConfig(awsCfg, stsOptions)
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsClient, s[SettingWebIdentityRoleARN], staticToken(tok),
			func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "keyway" }))
	}
	if role := s[SettingRoleARN]; role != "" {
		stsClient := sts.NewFromConfig(awsCfg, stsOptions)
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, role, func(o *stscreds.AssumeRoleOptions) {
			if ext := s[SettingExternalID]; ext != "" {
				o.ExternalID = aws.String(ext)
			}
			o.RoleSessionName = "keyway"
		}))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: awsCfg, endpoint: s[SettingEndpoint], log: log, batch: batch}
	return c, nil
}

// Client reads secrets; one SDK client per region, since an ARN's region wins.
type Client struct {
	cfg      aws.Config
	endpoint string
	log      *slog.Logger

	byRegion perRegion[API]

	mu        sync.Mutex
	batch     bool
	batchDown bool // the batch API was refused once; use GetSecretValue from now on
	// describeDenied: DescribeSecret was refused once; rotation checks read values.
	describeDenied bool
}

var _ providers.BatchClient = (*Client)(nil)

// Close implements providers.Client.
func (c *Client) Close() error { return nil }

// BatchSize implements providers.BatchClient: BatchGetSecretValue reads AWSCURRENT only.
func (c *Client) BatchSize(_ context.Context, ref providers.Ref) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batch && !c.batchDown && (ref.Version == "" || ref.Version == "AWSCURRENT") {
		return MaxBatch
	}
	return 0
}

func (c *Client) api(region string) API {
	return c.byRegion.get(region, func() API {
		return secretsmanager.NewFromConfig(c.cfg, func(o *secretsmanager.Options) { regional(&o.Region, &o.BaseEndpoint, region, c.endpoint) })
	})
}

// regional points an SDK client at region (when set) and at the endpoint override.
func regional(dstRegion *string, dstEndpoint **string, region, endpoint string) {
	if region != "" {
		*dstRegion = region
	}
	if endpoint != "" {
		*dstEndpoint = aws.String(endpoint)
	}
}

// perRegion holds one SDK client per region, made on first use: an ARN's region wins over
// the configured one.
type perRegion[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

func (p *perRegion[T]) get(region string, newClient func() T) T {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.m[region]; ok {
		return a
	}
	if p.m == nil {
		p.m = map[string]T{}
	}
	a := newClient()
	p.m[region] = a
	return a
}

// regionOf returns the region of an ARN, or "" for a name (the configured region).
func regionOf(id string) string {
	if a, err := arn.Parse(id); err == nil {
		return a.Region
	}
	return ""
}

// Fetch implements providers.Client. ref.Version is a staging label (AWSCURRENT,
// AWSPREVIOUS, any custom stage) or a version id.
func (c *Client) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(ref.Path)}
	if v := ref.Version; v != "" {
		if isStage(v) {
			in.VersionStage = aws.String(v)
		} else {
			in.VersionId = aws.String(v)
		}
	}
	out, err := c.api(regionOf(ref.Path)).GetSecretValue(ctx, in)
	if err != nil {
		return providers.Secret{}, classify(err, fmt.Sprintf("secret %q", ref.Path))
	}
	return decode(ref.Path, out.SecretString, out.SecretBinary, aws.ToString(out.VersionId))
}

// isStage tells a staging label from a version id (a UUID, 32–64 characters).
func isStage(v string) bool {
	return len(v) < 32 || strings.HasPrefix(v, "AWS")
}

// FetchBatch implements providers.BatchClient with BatchGetSecretValue, one call per region.
func (c *Client) FetchBatch(ctx context.Context, refs []providers.Ref) []providers.Result {
	out := make([]providers.Result, len(refs))
	byRegion := map[string][]int{}
	for i, r := range refs {
		region := regionOf(r.Path)
		byRegion[region] = append(byRegion[region], i)
	}
	for region, idx := range byRegion {
		c.mu.Lock()
		down := c.batchDown
		c.mu.Unlock()
		if down {
			for _, i := range idx {
				out[i].Secret, out[i].Err = c.Fetch(ctx, refs[i])
			}
			continue
		}
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = refs[i].Path
		}
		resp, err := c.api(region).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
		if err != nil {
			var ae smithy.APIError
			refused := errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "UnknownOperationException")
			if refused {
				c.mu.Lock()
				c.batchDown = true
				c.mu.Unlock()
				c.log.Warn("BatchGetSecretValue refused; reading secrets one at a time", "code", ae.ErrorCode(),
					"hint", "grant secretsmanager:BatchGetSecretValue to batch reads")
			}
			for _, i := range idx {
				if refused {
					out[i].Secret, out[i].Err = c.Fetch(ctx, refs[i])
				} else {
					out[i].Err = classify(err, fmt.Sprintf("secret %q", refs[i].Path))
				}
			}
			continue
		}
		got := map[string]smtypes.SecretValueEntry{}
		for _, v := range resp.SecretValues {
			got[aws.ToString(v.ARN)] = v
			got[aws.ToString(v.Name)] = v
		}
		failed := map[string]smtypes.APIErrorType{}
		for _, e := range resp.Errors {
			failed[aws.ToString(e.SecretId)] = e
		}
		for _, i := range idx {
			id := refs[i].Path
			if v, ok := got[id]; ok {
				out[i].Secret, out[i].Err = decode(id, v.SecretString, v.SecretBinary, aws.ToString(v.VersionId))
				continue
			}
			if e, ok := failed[id]; ok {
				out[i].Err = classifyCode(aws.ToString(e.ErrorCode), aws.ToString(e.Message), fmt.Sprintf("secret %q", id))
				continue
			}
			// Not named in either list: read it alone rather than guess.
			out[i].Secret, out[i].Err = c.Fetch(ctx, refs[i])
		}
	}
	return out
}

func decode(id string, str *string, bin []byte, version string) (providers.Secret, error) {
	if str != nil {
		var m map[string]any
		if err := json.Unmarshal([]byte(*str), &m); err == nil && m != nil {
			return providers.Secret{Data: m, Version: version}, nil
		}
		return providers.Secret{Data: map[string]any{"value": *str}, Whole: *str, Version: version}, nil
	}
	if bin != nil {
		return providers.Secret{Data: map[string]any{"value": bin}, Whole: bin, Version: version}, nil
	}
	return providers.Secret{}, fmt.Errorf("%w: secret %q has no value", providers.ErrNotFound, id)
}

func classify(err error, what string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return classifyCode(ae.ErrorCode(), ae.ErrorMessage(), what)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", providers.ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %s", providers.ErrUnavailable, what, redact.Upstream(err.Error()))
}

// classifyCode maps Secrets Manager's error codes onto the provider sentinels. Service
// messages describe the request, never secret values.
func classifyCode(code, msg, what string) error {
	code, msg = redact.Upstream(code), redact.Upstream(msg)
	switch code {
	case "ResourceNotFoundException":
		return fmt.Errorf("%w: %s: %s", providers.ErrNotFound, what, code)
	case "AccessDeniedException", "DecryptionFailure", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
		return fmt.Errorf("%w: %s: %s: %s", providers.ErrPermissionDenied, what, code, msg)
	case "ThrottlingException", "InternalServiceError", "InternalFailure", "ServiceUnavailable", "RequestLimitExceeded":
		return fmt.Errorf("%w: %s: %s: %s", providers.ErrUnavailable, what, code, msg)
	}
	return fmt.Errorf("%s: %s: %s", what, code, msg)
}
