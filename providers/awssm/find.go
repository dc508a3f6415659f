package awssm

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyway-dev/keyway/providers"
)

var _ providers.Finder = (*Client)(nil)

// Find implements providers.Finder with ListSecrets: the name prefix and each tag key are
// filters the service applies; tag values are checked here, since the service matches keys
// and values separately (a secret with a=x and b=y passes filters a and y).
func (c *Client) Find(ctx context.Context, prefix string, tags map[string]string, limit int) ([]string, error) {
	var filters []types.Filter
	if prefix != "" {
		filters = append(filters, types.Filter{Key: types.FilterNameStringTypeName, Values: []string{prefix}})
	}
	for k := range tags {
		filters = append(filters, types.Filter{Key: types.FilterNameStringTypeTagKey, Values: []string{k}})
	}
	in := &secretsmanager.ListSecretsInput{Filters: filters, MaxResults: aws.Int32(100)}
	var names []string
	api := c.api("")
	for pages := 0; ; pages++ {
		if pages == 1000 {
			return nil, fmt.Errorf("ListSecrets: more than 1000 pages")
		}
		out, err := api.ListSecrets(ctx, in)
		if err != nil {
			return nil, classify(err, "ListSecrets")
		}
		for _, e := range out.SecretList {
			if !hasTags(e.Tags, tags) {
				continue
			}
			if len(names) == limit {
				return nil, fmt.Errorf("ListSecrets: more than %d secrets match", limit)
			}
			names = append(names, aws.ToString(e.Name))
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	slices.Sort(names)
	return names, nil
}

func hasTags(have []types.Tag, want map[string]string) bool {
	for k, v := range want {
		if !slices.ContainsFunc(have, func(t types.Tag) bool { return aws.ToString(t.Key) == k && aws.ToString(t.Value) == v }) {
			return false
		}
	}
	return true
}
