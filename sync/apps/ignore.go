package apps

import (
	"fmt"

	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// compileIgnores compiles an application's ignoreDifferences.
func compileIgnores(list []v1alpha1.ResourceIgnoreDiffs) ([]apply.IgnoreRule, error) {
	var out []apply.IgnoreRule
	for i, r := range list {
		rule, err := apply.NewIgnoreRule(r.Group, r.Kind, r.Name, r.Namespace, r.JSONPointers, r.JQPathExpressions, r.ManagedFieldsManagers)
		if err != nil {
			return nil, fmt.Errorf("spec.ignoreDifferences[%d].%w", i, err)
		}
		out = append(out, rule)
	}
	return out, nil
}
