package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metav1AddToGroupVersion(s *runtime.Scheme) { metav1.AddToGroupVersion(s, GroupVersion) }

// SecretKeySelector names one key of a Secret: in the store's namespace for a SecretStore;
// a ClusterSecretStore names the namespace.
type SecretKeySelector struct {
	Name      string  `json:"name,omitempty"`
	Namespace *string `json:"namespace,omitempty"`
	Key       string  `json:"key,omitempty"`
}

// ServiceAccountSelector names a service account whose token is requested for a login.
type ServiceAccountSelector struct {
	Name      string   `json:"name"`
	Namespace *string  `json:"namespace,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
}
