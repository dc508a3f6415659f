package apply

import (
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
)

// Cluster applies objects to one cluster.
type Cluster struct {
	Kube   kubernetes.Interface
	Dyn    dynamic.Interface
	Mapper *restmapper.DeferredDiscoveryRESTMapper
	// FieldManager names every write (server-side apply's field manager).
	FieldManager string
	// HandOver are the client-side apply managers whose fields keyway takes over on its
	// first apply of an object (see handover.go).
	HandOver []string
	// Timeout bounds each wait: a wave's health, a kind to be served, an object to go.
	Timeout time.Duration
	// Poll is how often a wait looks again.
	Poll time.Duration
	Log  *slog.Logger
	// Wrote, when set, is told of each write: apply, create or delete, with the object
	// written when the server returned one.
	Wrote func(verb string, u *unstructured.Unstructured)
}

func (c *Cluster) wrote(verb string, u *unstructured.Unstructured) {
	if c.Wrote != nil {
		c.Wrote(verb, u)
	}
}

// Mapping finds the resource of a kind, re-reading discovery once when the kind is new
// (a CRD applied in an earlier wave).
func (c *Cluster) Mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		c.Mapper.Reset()
		m, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	return m, err
}

// Resource is the dynamic client for a mapping in namespace.
func (c *Cluster) Resource(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dyn.Resource(m.Resource).Namespace(namespace)
	}
	return c.Dyn.Resource(m.Resource)
}
