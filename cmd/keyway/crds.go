package main

import (
	"github.com/spf13/cobra"

	"github.com/keyway-dev/keyway/sync/api/crds"
)

func newCRDsCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "crds",
		Short: "Print the CustomResourceDefinitions keyway serves, as one YAML stream",
		Long: `crds prints every CRD keyway's controllers serve: External Secrets' ExternalSecret,
SecretStore and ClusterSecretStore (external-secrets.io/v1, with v1beta1 served from the same
schema, so manifests written for External Secrets Operator apply unchanged) and Sealed
Secrets' SealedSecret (bitnami.com/v1alpha1). examples/install/crds.yaml holds the same.`,
		Example: `  keyway crds | kubectl apply --server-side -f -`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			out, err := crds.All()
			if err != nil {
				return err
			}
			_, err = a.out.Write(out)
			return err
		},
	}
}
