package awssm

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/keyway-dev/keyway/providers"
)

var _ providers.Versioner = (*Client)(nil)

// CurrentVersion implements providers.Versioner with DescribeSecret, which lists the
// version ids and their staging labels and never the value: the answer is the id that
// holds ref's stage (AWSCURRENT unless the reference names another), comparable with the
// VersionId GetSecretValue returned. A reference pinned to a version id is its own answer.
// A principal allowed GetSecretValue but not DescribeSecret gets "" (the value is read).
func (c *Client) CurrentVersion(ctx context.Context, ref providers.Ref) (string, error) {
	stage := ref.Version
	switch {
	case stage == "":
		stage = "AWSCURRENT"
	case !isStage(stage):
		return stage, nil
	}
	c.mu.Lock()
	denied := c.describeDenied
	c.mu.Unlock()
	if denied {
		return "", nil
	}
	out, err := c.api(regionOf(ref.Path)).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ref.Path)})
	if err != nil {
		if ae := smithy.APIError(nil); errors.As(err, &ae) && ae.ErrorCode() == "AccessDeniedException" {
			c.mu.Lock()
			c.describeDenied = true
			c.mu.Unlock()
			c.log.Info("secrets manager: DescribeSecret is not allowed; rotation checks read values instead")
			return "", nil
		}
		return "", classify(err, fmt.Sprintf("secret %q", ref.Path))
	}
	for id, stages := range out.VersionIdsToStages {
		if slices.Contains(stages, stage) {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: secret %q has no version labelled %s", providers.ErrNotFound, ref.Path, stage)
}
