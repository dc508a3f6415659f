package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretStoreRef names the store an ExternalSecret reads from.
type SecretStoreRef struct {
	Name string `json:"name,omitempty"`
	// Kind is SecretStore (the default) or ClusterSecretStore.
	// +kubebuilder:validation:Enum=SecretStore;ClusterSecretStore
	Kind string `json:"kind,omitempty"`
}

// ExternalSecretCreationPolicy says who owns the target Secret.
// +kubebuilder:validation:Enum=Owner;Orphan;Merge;None
type ExternalSecretCreationPolicy string

// Creation policies.
const (
	CreatePolicyOwner  ExternalSecretCreationPolicy = "Owner"
	CreatePolicyOrphan ExternalSecretCreationPolicy = "Orphan"
	CreatePolicyMerge  ExternalSecretCreationPolicy = "Merge"
	CreatePolicyNone   ExternalSecretCreationPolicy = "None"
)

// ExternalSecretDeletionPolicy says what happens to the target when its data is gone.
// +kubebuilder:validation:Enum=Delete;Merge;Retain
type ExternalSecretDeletionPolicy string

// Deletion policies.
const (
	DeletionPolicyDelete ExternalSecretDeletionPolicy = "Delete"
	DeletionPolicyMerge  ExternalSecretDeletionPolicy = "Merge"
	DeletionPolicyRetain ExternalSecretDeletionPolicy = "Retain"
)

// ExternalSecretTemplateMetadata is the target Secret's metadata from the template.
type ExternalSecretTemplateMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// TemplateEngineVersion selects the template engine; keyway implements v2.
// +kubebuilder:validation:Enum=v2
type TemplateEngineVersion string

// TemplateMergePolicy says whether template output replaces or merges with the data.
// +kubebuilder:validation:Enum=Replace;Merge
type TemplateMergePolicy string

// ExternalSecretTemplate shapes the target Secret.
type ExternalSecretTemplate struct {
	Type corev1.SecretType `json:"type,omitempty"`
	// +kubebuilder:default="v2"
	EngineVersion TemplateEngineVersion          `json:"engineVersion,omitempty"`
	Metadata      ExternalSecretTemplateMetadata `json:"metadata,omitempty"`
	// +kubebuilder:default="Replace"
	MergePolicy  TemplateMergePolicy `json:"mergePolicy,omitempty"`
	Data         map[string]string   `json:"data,omitempty"`
	TemplateFrom []TemplateFrom      `json:"templateFrom,omitempty"`
}

// TemplateScope says whether a referenced template is a value or a map of them.
// +kubebuilder:validation:Enum=Values;KeysAndValues
type TemplateScope string

// TemplateTarget is where a templateFrom's output goes.
// +kubebuilder:validation:Enum=Data;Annotations;Labels
type TemplateTarget string

// TemplateFrom takes templates from a ConfigMap, a Secret or a literal.
type TemplateFrom struct {
	ConfigMap *TemplateRef `json:"configMap,omitempty"`
	Secret    *TemplateRef `json:"secret,omitempty"`
	// +kubebuilder:default="Data"
	Target  TemplateTarget `json:"target,omitempty"`
	Literal *string        `json:"literal,omitempty"`
}

// TemplateRef names a ConfigMap or Secret holding templates and which keys to use.
type TemplateRef struct {
	Name  string            `json:"name"`
	Items []TemplateRefItem `json:"items"`
}

// TemplateRefItem is one key of a template source.
type TemplateRefItem struct {
	Key string `json:"key"`
	// +kubebuilder:default="Values"
	TemplateAs TemplateScope `json:"templateAs,omitempty"`
}

// ExternalSecretTarget is the Secret an ExternalSecret writes.
type ExternalSecretTarget struct {
	// Name defaults to the ExternalSecret's name.
	Name string `json:"name,omitempty"`
	// +kubebuilder:default="Owner"
	CreationPolicy ExternalSecretCreationPolicy `json:"creationPolicy,omitempty"`
	// +kubebuilder:default="Retain"
	DeletionPolicy ExternalSecretDeletionPolicy `json:"deletionPolicy,omitempty"`
	Template       *ExternalSecretTemplate      `json:"template,omitempty"`
	Immutable      bool                         `json:"immutable,omitempty"`
}

// ExternalSecretConversionStrategy converts values on their way in.
// +kubebuilder:validation:Enum=Default;Unicode
type ExternalSecretConversionStrategy string

// ExternalSecretDecodingStrategy decodes values on their way in.
// +kubebuilder:validation:Enum=Auto;Base64;Base64URL;None
type ExternalSecretDecodingStrategy string

// ExternalSecretMetadataPolicy says whether remoteRef reads the value or its metadata.
// +kubebuilder:validation:Enum=None;Fetch
type ExternalSecretMetadataPolicy string

// ExternalSecretDataRemoteRef names a value in the store.
type ExternalSecretDataRemoteRef struct {
	Key string `json:"key"`
	// +kubebuilder:default="None"
	MetadataPolicy ExternalSecretMetadataPolicy `json:"metadataPolicy,omitempty"`
	Property       string                       `json:"property,omitempty"`
	Version        string                       `json:"version,omitempty"`
	// +kubebuilder:default="Default"
	ConversionStrategy ExternalSecretConversionStrategy `json:"conversionStrategy,omitempty"`
	// +kubebuilder:default="None"
	DecodingStrategy ExternalSecretDecodingStrategy `json:"decodingStrategy,omitempty"`
}

// ExternalSecretData is one key of the target Secret and the value it comes from.
type ExternalSecretData struct {
	SecretKey string                      `json:"secretKey"`
	RemoteRef ExternalSecretDataRemoteRef `json:"remoteRef"`
}

// FindName matches secret names by regular expression.
type FindName struct {
	RegExp string `json:"regexp,omitempty"`
}

// ExternalSecretFind selects many secrets of the store.
type ExternalSecretFind struct {
	Path *string           `json:"path,omitempty"`
	Name *FindName         `json:"name,omitempty"`
	Tags map[string]string `json:"tags,omitempty"`
	// +kubebuilder:default="Default"
	ConversionStrategy ExternalSecretConversionStrategy `json:"conversionStrategy,omitempty"`
	// +kubebuilder:default="None"
	DecodingStrategy ExternalSecretDecodingStrategy `json:"decodingStrategy,omitempty"`
}

// ExternalSecretRewriteRegexp renames keys by regular expression.
type ExternalSecretRewriteRegexp struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// ExternalSecretRewrite renames the keys a dataFrom entry produced.
type ExternalSecretRewrite struct {
	Regexp    *ExternalSecretRewriteRegexp    `json:"regexp,omitempty"`
	Transform *ExternalSecretRewriteTransform `json:"transform,omitempty"`
}

// ExternalSecretRewriteTransform renames each key by a template; .value is the key.
type ExternalSecretRewriteTransform struct {
	Template string `json:"template"`
}

// ExternalSecretDataFromRemoteRef takes whole secrets (extract) or many (find).
type ExternalSecretDataFromRemoteRef struct {
	Extract *ExternalSecretDataRemoteRef `json:"extract,omitempty"`
	Find    *ExternalSecretFind          `json:"find,omitempty"`
	Rewrite []ExternalSecretRewrite      `json:"rewrite,omitempty"`
}

// ExternalSecretRefreshPolicy says when an ExternalSecret is read again.
// +kubebuilder:validation:Enum=CreatedOnce;Periodic;OnChange
type ExternalSecretRefreshPolicy string

// Refresh policies.
const (
	RefreshPolicyPeriodic    ExternalSecretRefreshPolicy = "Periodic"
	RefreshPolicyOnChange    ExternalSecretRefreshPolicy = "OnChange"
	RefreshPolicyCreatedOnce ExternalSecretRefreshPolicy = "CreatedOnce"
)

// ExternalSecretSpec is what an ExternalSecret asks for.
type ExternalSecretSpec struct {
	SecretStoreRef SecretStoreRef `json:"secretStoreRef,omitempty"`
	// +kubebuilder:default={creationPolicy:Owner,deletionPolicy:Retain}
	Target        ExternalSecretTarget        `json:"target,omitempty"`
	RefreshPolicy ExternalSecretRefreshPolicy `json:"refreshPolicy,omitempty"`
	// RefreshInterval is how often the values are read again; 0 reads them once.
	// +kubebuilder:default="1h"
	RefreshInterval *metav1.Duration                  `json:"refreshInterval,omitempty"`
	Data            []ExternalSecretData              `json:"data,omitempty"`
	DataFrom        []ExternalSecretDataFromRemoteRef `json:"dataFrom,omitempty"`
}

// ExternalSecretConditionType is a status condition's type.
type ExternalSecretConditionType string

// Condition types and reasons, as ESO writes them.
const (
	ExternalSecretReady   ExternalSecretConditionType = "Ready"
	ExternalSecretDeleted ExternalSecretConditionType = "Deleted"

	ReasonSecretSynced      = "SecretSynced"
	ReasonSecretSyncedError = "SecretSyncedError"
	ReasonSecretDeleted     = "SecretDeleted"

	// Event reasons on the ExternalSecret when its target Secret is written, as ESO's.
	ReasonCreated = "Created"
	ReasonUpdated = "Updated"
)

// ExternalSecretStatusCondition is one status condition.
type ExternalSecretStatusCondition struct {
	Type               ExternalSecretConditionType `json:"type"`
	Status             corev1.ConditionStatus      `json:"status"`
	Reason             string                      `json:"reason,omitempty"`
	Message            string                      `json:"message,omitempty"`
	LastTransitionTime metav1.Time                 `json:"lastTransitionTime,omitempty"`
}

// ExternalSecretStatus is what the syncer reports.
type ExternalSecretStatus struct {
	RefreshTime           metav1.Time                     `json:"refreshTime,omitempty"`
	SyncedResourceVersion string                          `json:"syncedResourceVersion,omitempty"`
	Conditions            []ExternalSecretStatusCondition `json:"conditions,omitempty"`
	Binding               corev1.LocalObjectReference     `json:"binding,omitempty"`
}

// ExternalSecret makes a Secret from values held in a SecretStore.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:scope=Namespaced,shortName=es,categories={external-secrets}
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.secretStoreRef.name`
// +kubebuilder:printcolumn:name="Refresh Interval",type=string,JSONPath=`.spec.refreshInterval`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type ExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ExternalSecretSpec   `json:"spec,omitempty"`
	Status            ExternalSecretStatus `json:"status,omitempty"`
}

// ExternalSecretList is a list of ExternalSecrets.
//
// +kubebuilder:object:root=true
type ExternalSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExternalSecret `json:"items"`
}
