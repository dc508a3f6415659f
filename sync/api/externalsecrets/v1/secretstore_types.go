package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretStoreSpec configures how the store reaches its backend and who may use it.
type SecretStoreSpec struct {
	// Controller selects the controller instance that handles the store (ESO's
	// controller class); empty for the default one.
	Controller string               `json:"controller,omitempty"`
	Provider   *SecretStoreProvider `json:"provider"`
	// RefreshInterval, in seconds, is how often the store's auth is validated again.
	RefreshInterval int `json:"refreshInterval,omitempty"`
	// Conditions limit which namespaces may use a ClusterSecretStore.
	Conditions []ClusterSecretStoreCondition `json:"conditions,omitempty"`
}

// ClusterSecretStoreCondition admits namespaces by name, label selector or regular
// expression.
type ClusterSecretStoreCondition struct {
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	Namespaces        []string              `json:"namespaces,omitempty"`
	NamespaceRegexes  []string              `json:"namespaceRegexes,omitempty"`
}

// SecretStoreProvider holds exactly one provider's configuration.
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type SecretStoreProvider struct {
	AWS   *AWSProvider   `json:"aws,omitempty"`
	Vault *VaultProvider `json:"vault,omitempty"`
	GCPSM *GCPSMProvider `json:"gcpsm,omitempty"`
	Fake  *FakeProvider  `json:"fake,omitempty"`
}

// VaultKVStoreVersion is the KV engine version of the store's path.
// +kubebuilder:validation:Enum=v1;v2
type VaultKVStoreVersion string

// VaultProvider reads a KV engine of a Vault server.
type VaultProvider struct {
	Auth   *VaultAuth `json:"auth,omitempty"`
	Server string     `json:"server"`
	// Path is the KV mount; keys are relative to it.
	Path *string `json:"path,omitempty"`
	// +kubebuilder:default:="v2"
	Version   VaultKVStoreVersion `json:"version"`
	Namespace *string             `json:"namespace,omitempty"`
	CABundle  []byte              `json:"caBundle,omitempty"`
}

// VaultAuth is one of Vault's auth methods.
type VaultAuth struct {
	Namespace      *string              `json:"namespace,omitempty"`
	TokenSecretRef *SecretKeySelector   `json:"tokenSecretRef,omitempty"`
	AppRole        *VaultAppRole        `json:"appRole,omitempty"`
	Kubernetes     *VaultKubernetesAuth `json:"kubernetes,omitempty"`
	Jwt            *VaultJwtAuth        `json:"jwt,omitempty"`
	UserPass       *VaultUserPassAuth   `json:"userPass,omitempty"`
}

// VaultAppRole logs in with a role id and a secret id.
type VaultAppRole struct {
	// +kubebuilder:default=approle
	Path      string             `json:"path"`
	RoleID    string             `json:"roleId,omitempty"`
	RoleRef   *SecretKeySelector `json:"roleRef,omitempty"`
	SecretRef SecretKeySelector  `json:"secretRef"`
}

// VaultKubernetesAuth logs in with a service-account token.
type VaultKubernetesAuth struct {
	// +kubebuilder:default=kubernetes
	Path              string                  `json:"mountPath"`
	ServiceAccountRef *ServiceAccountSelector `json:"serviceAccountRef,omitempty"`
	SecretRef         *SecretKeySelector      `json:"secretRef,omitempty"`
	Role              string                  `json:"role"`
}

// VaultKubernetesServiceAccountTokenAuth requests a service-account token for a JWT login.
type VaultKubernetesServiceAccountTokenAuth struct {
	ServiceAccountRef ServiceAccountSelector `json:"serviceAccountRef"`
	Audiences         *[]string              `json:"audiences,omitempty"`
	ExpirationSeconds *int64                 `json:"expirationSeconds,omitempty"`
}

// VaultJwtAuth logs in with a JWT from a Secret or a requested service-account token.
type VaultJwtAuth struct {
	// +kubebuilder:default=jwt
	Path                          string                                  `json:"path"`
	Role                          string                                  `json:"role,omitempty"`
	SecretRef                     *SecretKeySelector                      `json:"secretRef,omitempty"`
	KubernetesServiceAccountToken *VaultKubernetesServiceAccountTokenAuth `json:"kubernetesServiceAccountToken,omitempty"`
}

// VaultUserPassAuth logs in with a user name and password.
type VaultUserPassAuth struct {
	// +kubebuilder:default=userpass
	Path      string            `json:"path"`
	Username  string            `json:"username"`
	SecretRef SecretKeySelector `json:"secretRef,omitempty"`
}

// AWSServiceType selects Secrets Manager or Parameter Store.
// +kubebuilder:validation:Enum=SecretsManager;ParameterStore
type AWSServiceType string

// AWSAuthSecretRef holds static AWS credentials.
type AWSAuthSecretRef struct {
	AccessKeyID     SecretKeySelector  `json:"accessKeyIDSecretRef,omitempty"`
	SecretAccessKey SecretKeySelector  `json:"secretAccessKeySecretRef,omitempty"`
	SessionToken    *SecretKeySelector `json:"sessionTokenSecretRef,omitempty"`
}

// AWSJWTAuth authenticates with a service account's token (IRSA).
type AWSJWTAuth struct {
	ServiceAccountRef *ServiceAccountSelector `json:"serviceAccountRef,omitempty"`
}

// AWSAuth is static credentials or a service account.
type AWSAuth struct {
	SecretRef *AWSAuthSecretRef `json:"secretRef,omitempty"`
	JWTAuth   *AWSJWTAuth       `json:"jwt,omitempty"`
}

// AWSProvider reads Secrets Manager or Parameter Store.
type AWSProvider struct {
	Service    AWSServiceType `json:"service"`
	Auth       AWSAuth        `json:"auth,omitempty"`
	Role       string         `json:"role,omitempty"`
	Region     string         `json:"region"`
	ExternalID string         `json:"externalID,omitempty"`
	Prefix     string         `json:"prefix,omitempty"`
}

// GCPSMAuthSecretRef holds a service-account key.
type GCPSMAuthSecretRef struct {
	SecretAccessKey SecretKeySelector `json:"secretAccessKeySecretRef,omitempty"`
}

// GCPWorkloadIdentity authenticates as a Kubernetes service account through workload
// identity.
type GCPWorkloadIdentity struct {
	ServiceAccountRef ServiceAccountSelector `json:"serviceAccountRef"`
	ClusterLocation   string                 `json:"clusterLocation,omitempty"`
	ClusterName       string                 `json:"clusterName,omitempty"`
	ClusterProjectID  string                 `json:"clusterProjectID,omitempty"`
}

// GCPSMAuth is a key or workload identity.
type GCPSMAuth struct {
	SecretRef        *GCPSMAuthSecretRef  `json:"secretRef,omitempty"`
	WorkloadIdentity *GCPWorkloadIdentity `json:"workloadIdentity,omitempty"`
}

// GCPSMProvider reads GCP Secret Manager.
type GCPSMProvider struct {
	Auth      GCPSMAuth `json:"auth,omitempty"`
	ProjectID string    `json:"projectID,omitempty"`
	Location  string    `json:"location,omitempty"`
}

// FakeProvider serves static data, for examples and tests.
type FakeProvider struct {
	Data []FakeProviderData `json:"data"`
}

// FakeProviderData is one key of a FakeProvider.
type FakeProviderData struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version string `json:"version,omitempty"`
}

// SecretStoreConditionType is a store condition's type.
type SecretStoreConditionType string

// SecretStoreReady says whether the store's auth was validated.
const SecretStoreReady SecretStoreConditionType = "Ready"

// SecretStoreStatusCondition is one store condition.
type SecretStoreStatusCondition struct {
	Type               SecretStoreConditionType `json:"type"`
	Status             corev1.ConditionStatus   `json:"status"`
	Reason             string                   `json:"reason,omitempty"`
	Message            string                   `json:"message,omitempty"`
	LastTransitionTime metav1.Time              `json:"lastTransitionTime,omitempty"`
}

// SecretStoreCapabilities says whether a store reads, writes or both.
type SecretStoreCapabilities string

// SecretStoreStatus is what the controller reports about a store.
type SecretStoreStatus struct {
	Conditions   []SecretStoreStatusCondition `json:"conditions,omitempty"`
	Capabilities SecretStoreCapabilities      `json:"capabilities,omitempty"`
}

// SecretStore tells ExternalSecrets of its namespace how to reach a backend.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Namespaced,shortName=ss,categories={external-secrets}
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type SecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SecretStoreSpec   `json:"spec,omitempty"`
	Status            SecretStoreStatus `json:"status,omitempty"`
}

// SecretStoreList is a list of SecretStores.
//
// +kubebuilder:object:root=true
type SecretStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecretStore `json:"items"`
}

// ClusterSecretStore is a SecretStore every namespace its conditions admit may use.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Cluster,shortName=css,categories={external-secrets}
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type ClusterSecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SecretStoreSpec   `json:"spec,omitempty"`
	Status            SecretStoreStatus `json:"status,omitempty"`
}

// ClusterSecretStoreList is a list of ClusterSecretStores.
//
// +kubebuilder:object:root=true
type ClusterSecretStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterSecretStore `json:"items"`
}
