// Package v1 holds keyway's Go types for External Secrets Operator's API
// (external-secrets.io/v1): ExternalSecret, SecretStore and ClusterSecretStore, with ESO's
// field names and meanings so existing manifests work unchanged. keyway's CRDs are generated
// from them (`make generate`, controller-gen); v1beta1 is served from the same schema.
//
// +kubebuilder:object:generate=true
// +groupName=external-secrets.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and version of the API.
var (
	GroupVersion  = schema.GroupVersion{Group: "external-secrets.io", Version: "v1"}
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	AddToScheme   = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ExternalSecret{}, &ExternalSecretList{}, &SecretStore{}, &SecretStoreList{}, &ClusterSecretStore{}, &ClusterSecretStoreList{}, &ClusterExternalSecret{}, &ClusterExternalSecretList{})
	metav1AddToGroupVersion(s)
	return nil
}
