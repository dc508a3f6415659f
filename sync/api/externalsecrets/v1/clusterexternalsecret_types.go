package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterExternalSecretSpec makes an ExternalSecret of ExternalSecretSpec in every
// namespace that Namespaces names or a selector matches.
type ClusterExternalSecretSpec struct {
	ExternalSecretSpec ExternalSecretSpec `json:"externalSecretSpec"`
	// ExternalSecretName names the ExternalSecrets made; the ClusterExternalSecret's name
	// by default.
	// +optional
	ExternalSecretName string `json:"externalSecretName,omitempty"`
	// +optional
	ExternalSecretMetadata ExternalSecretMetadata `json:"externalSecretMetadata,omitempty"`
	// NamespaceSelector is ESO's older single selector, ORed with NamespaceSelectors.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// NamespaceSelectors are ORed.
	// +optional
	NamespaceSelectors []*metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// RefreshInterval is how often the namespaces are looked at again (1h by default).
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshTime,omitempty"`
}

// ExternalSecretMetadata is put on each ExternalSecret a ClusterExternalSecret makes.
type ExternalSecretMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// ClusterExternalSecretNamespaceFailure is a namespace an ExternalSecret could not be
// made in, and why.
type ClusterExternalSecretNamespaceFailure struct {
	Namespace string `json:"namespace"`
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ClusterExternalSecretStatusCondition is the Ready condition.
type ClusterExternalSecretStatusCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	// +optional
	Message string `json:"message,omitempty"`
}

// ClusterExternalSecretStatus says where the ExternalSecrets were made.
type ClusterExternalSecretStatus struct {
	ExternalSecretName    string                                  `json:"externalSecretName,omitempty"`
	FailedNamespaces      []ClusterExternalSecretNamespaceFailure `json:"failedNamespaces,omitempty"`
	ProvisionedNamespaces []string                                `json:"provisionedNamespaces,omitempty"`
	Conditions            []ClusterExternalSecretStatusCondition  `json:"conditions,omitempty"`
}

// ClusterExternalSecret makes the same ExternalSecret in many namespaces.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Cluster,shortName=ces,categories={external-secrets}
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.externalSecretSpec.secretStoreRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type ClusterExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterExternalSecretSpec   `json:"spec,omitempty"`
	Status            ClusterExternalSecretStatus `json:"status,omitempty"`
}

// ClusterExternalSecretList is a list of ClusterExternalSecrets.
//
// +kubebuilder:object:root=true
type ClusterExternalSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterExternalSecret `json:"items"`
}
