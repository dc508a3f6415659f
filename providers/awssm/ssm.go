package awssm

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/keyway-dev/keyway/providers"
)

// MaxParameters is GetParameters' limit on Names.
const MaxParameters = 10

// SSMProvider builds SSM Parameter Store clients, registered as "awsssm": references are
// ref+awsssm:///prod/db/password (#/pointer into a JSON value) or <path:/prod/db#KEY> with
// --backend awsssm. Parameters are read with GetParameters, 10 per call, with decryption.
// It takes the same settings as the Secrets Manager provider.
type SSMProvider struct{}

var _ providers.Provider = SSMProvider{}

// Name implements providers.Provider.
func (SSMProvider) Name() string { return "awsssm" }

// Validate implements providers.Provider: Parameter Store takes Secrets Manager's settings.
func (SSMProvider) Validate(s providers.Settings) error { return Provider{}.Validate(s) }

// Open implements providers.Provider.
func (SSMProvider) Open(ctx context.Context, cfg providers.Config) (providers.Client, error) {
	sm, err := Provider{}.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := sm.(*Client)
	return &SSMClient{cfg: c.cfg, endpoint: c.endpoint, log: c.log}, nil
}

// SSMClient reads parameters.
type SSMClient struct {
	cfg      aws.Config
	endpoint string
	log      *slog.Logger

	byRegion perRegion[*ssm.Client]
}

var _ providers.BatchClient = (*SSMClient)(nil)

// Close implements providers.Client.
func (c *SSMClient) Close() error { return nil }

// BatchSize implements providers.BatchClient: every parameter can be batched; a version
// becomes a NAME:VERSION selector.
func (c *SSMClient) BatchSize(context.Context, providers.Ref) int { return MaxParameters }

func (c *SSMClient) api(region string) *ssm.Client {
	return c.byRegion.get(region, func() *ssm.Client {
		return ssm.NewFromConfig(c.cfg, func(o *ssm.Options) { regional(&o.Region, &o.BaseEndpoint, region, c.endpoint) })
	})
}

func selector(ref providers.Ref) string {
	name := ref.Path
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "arn:") && strings.Contains(name, "/") {
		name = "/" + name // ref+awsssm:///prod/x and ref+awsssm://prod/x name the same parameter
	}
	if ref.Version != "" {
		name += ":" + ref.Version
	}
	return name
}

// Fetch implements providers.Client.
func (c *SSMClient) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	out := c.FetchBatch(ctx, []providers.Ref{ref})
	return out[0].Secret, out[0].Err
}

// FetchBatch implements providers.BatchClient with GetParameters, one call per region.
func (c *SSMClient) FetchBatch(ctx context.Context, refs []providers.Ref) []providers.Result {
	out := make([]providers.Result, len(refs))
	byRegion := map[string][]int{}
	for i, r := range refs {
		byRegion[regionOf(r.Path)] = append(byRegion[regionOf(r.Path)], i)
	}
	for region, idx := range byRegion {
		names := make([]string, len(idx))
		for j, i := range idx {
			names[j] = selector(refs[i])
		}
		resp, err := c.api(region).GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
		if err != nil {
			for _, i := range idx {
				out[i].Err = classify(err, fmt.Sprintf("parameter %q", refs[i].Path))
			}
			continue
		}
		got := map[string]string{}
		versions := map[string]int64{}
		for _, p := range resp.Parameters {
			sel := aws.ToString(p.Name) + aws.ToString(p.Selector)
			got[sel] = aws.ToString(p.Value)
			versions[sel] = p.Version
			if aws.ToString(p.Selector) == "" {
				got[aws.ToString(p.ARN)] = aws.ToString(p.Value)
			}
		}
		for j, i := range idx {
			v, ok := got[names[j]]
			if !ok {
				out[i].Err = fmt.Errorf("%w: parameter %q", providers.ErrNotFound, names[j])
				continue
			}
			version := fmt.Sprint(versions[names[j]])
			var m map[string]any
			if err := json.Unmarshal([]byte(v), &m); err == nil && m != nil {
				out[i].Secret = providers.Secret{Data: m, Version: version}
				continue
			}
			out[i].Secret = providers.Secret{Data: map[string]any{"value": v}, Whole: v, Version: version}
		}
	}
	return out
}
