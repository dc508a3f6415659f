// Package v1alpha1 holds the part of Argo CD's argoproj.io/v1alpha1 Application API that
// keyway's daemon reads, with Argo CD's field names, so the Application manifests a team
// already keeps in git drive the daemon unchanged. Fields keyway does not act on are left
// out; manifests that set them still decode (unknown fields are ignored, as by kubectl).
// keyway reads these objects from files and renders; it serves no CRD for them, so
// controller-gen skips the package.
//
// +kubebuilder:skip
package v1alpha1

import (
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/util/validation"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and versions of the Application API.
const (
	Group      = "argoproj.io"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	Kind       = "Application"

	// ResourcesFinalizer on an Application means its resources are deleted with it;
	// without it they are orphaned.
	ResourcesFinalizer = "resources-finalizer.argocd.argoproj.io"
	// InCluster is the destination server naming the cluster the daemon runs against.
	InCluster     = "https://kubernetes.default.svc"
	InClusterName = "in-cluster"
)

// Application is an Argo CD Application.
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSpec `json:"spec"`
}

// ApplicationSpec is what to deploy where, and how.
type ApplicationSpec struct {
	Source            *ApplicationSource     `json:"source,omitempty"`
	Destination       ApplicationDestination `json:"destination"`
	Project           string                 `json:"project"`
	SyncPolicy        *SyncPolicy            `json:"syncPolicy,omitempty"`
	IgnoreDifferences []ResourceIgnoreDiffs  `json:"ignoreDifferences,omitempty"`
	Sources           []ApplicationSource    `json:"sources,omitempty"`
	Info              []json.RawMessage      `json:"info,omitempty"`
	RevisionHistory   *int64                 `json:"revisionHistoryLimit,omitempty"`
}

// ApplicationSource is a path in a git repository at a revision and how to render it.
type ApplicationSource struct {
	RepoURL        string                      `json:"repoURL"`
	Path           string                      `json:"path,omitempty"`
	TargetRevision string                      `json:"targetRevision,omitempty"`
	Helm           *ApplicationSourceHelm      `json:"helm,omitempty"`
	Kustomize      *json.RawMessage            `json:"kustomize,omitempty"`
	Directory      *ApplicationSourceDirectory `json:"directory,omitempty"`
	Plugin         *ApplicationSourcePlugin    `json:"plugin,omitempty"`
	Chart          string                      `json:"chart,omitempty"`
	Ref            string                      `json:"ref,omitempty"`
}

// ApplicationSourceHelm are the Helm settings of a source.
type ApplicationSourceHelm struct {
	ValueFiles   []string         `json:"valueFiles,omitempty"`
	Parameters   []HelmParameter  `json:"parameters,omitempty"`
	ReleaseName  string           `json:"releaseName,omitempty"`
	Values       string           `json:"values,omitempty"`
	ValuesObject *json.RawMessage `json:"valuesObject,omitempty"`
	SkipCrds     bool             `json:"skipCrds,omitempty"`
	Namespace    string           `json:"namespace,omitempty"`
	KubeVersion  string           `json:"kubeVersion,omitempty"`
	APIVersions  []string         `json:"apiVersions,omitempty"`
}

// HelmParameter is one --set (or --set-string when ForceString).
type HelmParameter struct {
	Name        string `json:"name,omitempty"`
	Value       string `json:"value,omitempty"`
	ForceString bool   `json:"forceString,omitempty"`
}

// ApplicationSourceDirectory selects files of a plain directory source.
type ApplicationSourceDirectory struct {
	Recurse bool   `json:"recurse,omitempty"`
	Exclude string `json:"exclude,omitempty"`
	Include string `json:"include,omitempty"`
}

// ApplicationSourcePlugin names a config management plugin; keyway is the plugin, so only
// its environment matters.
type ApplicationSourcePlugin struct {
	Name string     `json:"name,omitempty"`
	Env  []EnvEntry `json:"env,omitempty"`
}

// EnvEntry is a plugin environment variable (ARGOCD_ENV_<Name> in Argo CD).
type EnvEntry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ApplicationDestination is the cluster and namespace resources go to.
type ApplicationDestination struct {
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// SyncPolicy says whether and how the application syncs on its own.
type SyncPolicy struct {
	Automated                *SyncPolicyAutomated      `json:"automated,omitempty"`
	SyncOptions              SyncOptions               `json:"syncOptions,omitempty"`
	Retry                    *RetryStrategy            `json:"retry,omitempty"`
	ManagedNamespaceMetadata *ManagedNamespaceMetadata `json:"managedNamespaceMetadata,omitempty"`
}

// SyncPolicyAutomated turns on automated sync.
type SyncPolicyAutomated struct {
	Prune      bool  `json:"prune,omitempty"`
	SelfHeal   bool  `json:"selfHeal,omitempty"`
	AllowEmpty bool  `json:"allowEmpty,omitempty"`
	Enabled    *bool `json:"enabled,omitempty"`
}

// ManagedNamespaceMetadata is put on a namespace CreateNamespace=true creates.
type ManagedNamespaceMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RetryStrategy is how a failed sync is retried.
type RetryStrategy struct {
	Limit   int64    `json:"limit,omitempty"`
	Backoff *Backoff `json:"backoff,omitempty"`
}

// Backoff is the retry delay: Duration, times Factor after each failure, at most MaxDuration.
type Backoff struct {
	Duration    string `json:"duration,omitempty"`
	Factor      *int64 `json:"factor,omitempty"`
	MaxDuration string `json:"maxDuration,omitempty"`
}

// ResourceIgnoreDiffs are the fields of matching resources the diff leaves out.
type ResourceIgnoreDiffs struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// SyncOptions are "Name=value" entries such as CreateNamespace=true.
type SyncOptions []string

// Has reports whether the option is set to value (case-insensitive, as Argo CD compares).
func (o SyncOptions) Has(option string) bool {
	for _, s := range o {
		if strings.EqualFold(strings.TrimSpace(s), option) {
			return true
		}
	}
	return false
}

// Value returns the value of name, or "".
func (o SyncOptions) Value(name string) string {
	for _, s := range o {
		k, v, ok := strings.Cut(s, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Automated reports whether the application syncs on its own.
func (a *Application) Automated() *SyncPolicyAutomated {
	if a.Spec.SyncPolicy == nil || a.Spec.SyncPolicy.Automated == nil {
		return nil
	}
	if e := a.Spec.SyncPolicy.Automated.Enabled; e != nil && !*e {
		return nil
	}
	return a.Spec.SyncPolicy.Automated
}

// Options returns the application's sync options (none when unset).
func (a *Application) Options() SyncOptions {
	if a.Spec.SyncPolicy == nil {
		return nil
	}
	return a.Spec.SyncPolicy.SyncOptions
}

// Validate checks what keyway needs to act on the application, naming the field at fault.
func (a *Application) Validate() error {
	if a.APIVersion != APIVersion || a.Kind != Kind {
		return fmt.Errorf("%s %s: want apiVersion %s, kind %s", a.APIVersion, a.Kind, APIVersion, Kind)
	}
	if a.Name == "" {
		return fmt.Errorf("Application without metadata.name")
	}
	// As Argo CD: a DNS-1123 subdomain. The daemon's per-application objects are named
	// after it (keyway-app-<name>), so it must also leave room for their prefixes.
	if errs := validation.IsDNS1123Subdomain(a.Name); len(errs) > 0 || len(a.Name) > 230 {
		return fmt.Errorf("Application %q: metadata.name must be a DNS-1123 subdomain of at most 230 characters (lower-case letters, digits, '-' and '.')", a.Name)
	}
	if len(a.Spec.Sources) > 0 {
		return fmt.Errorf("Application %s: spec.sources (multiple sources) is not supported; use spec.source", a.Name)
	}
	if a.Spec.Source == nil || a.Spec.Source.RepoURL == "" {
		return fmt.Errorf("Application %s: spec.source.repoURL is required", a.Name)
	}
	if a.Spec.Source.Chart != "" {
		return fmt.Errorf("Application %s: spec.source.chart (Helm repositories) is not supported; the daemon renders charts from git", a.Name)
	}
	for _, o := range a.Options() {
		if err := CheckSyncOption("Application "+a.Name+": spec.syncPolicy.syncOptions", o); err != nil {
			return err
		}
	}
	if a.Spec.Destination.Server == "" && a.Spec.Destination.Name == "" {
		return fmt.Errorf("Application %s: spec.destination needs server or name", a.Name)
	}
	return nil
}

// ProjectKind is the kind of an Argo CD AppProject.
const ProjectKind = "AppProject"

// AppProject says which repositories an application may use, where it may deploy and
// which kinds it may create.
type AppProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AppProjectSpec `json:"spec"`
}

// AppProjectSpec is Argo CD's project policy, the fields keyway enforces.
type AppProjectSpec struct {
	SourceRepos                []string                 `json:"sourceRepos,omitempty"`
	Destinations               []ApplicationDestination `json:"destinations,omitempty"`
	ClusterResourceWhitelist   []GroupKind              `json:"clusterResourceWhitelist,omitempty"`
	ClusterResourceBlacklist   []GroupKind              `json:"clusterResourceBlacklist,omitempty"`
	NamespaceResourceWhitelist []GroupKind              `json:"namespaceResourceWhitelist,omitempty"`
	NamespaceResourceBlacklist []GroupKind              `json:"namespaceResourceBlacklist,omitempty"`
}

// GroupKind names kinds by glob: group "" is the core group, "*" any.
type GroupKind struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
}

// SetKind is the kind of an Argo CD ApplicationSet.
const SetKind = "ApplicationSet"

// ApplicationSet generates Applications from a template and generators.
type ApplicationSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSetSpec `json:"spec"`
}

// ApplicationSetSpec holds the generators and the template, as Argo CD names them.
type ApplicationSetSpec struct {
	GoTemplate        bool                  `json:"goTemplate,omitempty"`
	GoTemplateOptions []string              `json:"goTemplateOptions,omitempty"`
	Generators        []SetGenerator        `json:"generators"`
	Template          json.RawMessage       `json:"template"`
	SyncPolicy        *ApplicationSetPolicy `json:"syncPolicy,omitempty"`
}

// ApplicationSetPolicy says what happens to generated Applications that are no longer
// generated.
type ApplicationSetPolicy struct {
	PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion,omitempty"`
}

// SetGenerator is one generator; exactly one field is set.
type SetGenerator struct {
	List     *ListGenerator    `json:"list,omitempty"`
	Clusters *ClusterGenerator `json:"clusters,omitempty"`
	Git      *GitGenerator     `json:"git,omitempty"`
	Matrix   *json.RawMessage  `json:"matrix,omitempty"`
	Merge    *json.RawMessage  `json:"merge,omitempty"`
}

// ListGenerator yields one parameter set per element.
type ListGenerator struct {
	Elements []map[string]any `json:"elements"`
}

// ClusterGenerator yields one parameter set per cluster Secret its selector matches.
type ClusterGenerator struct {
	Selector metav1.LabelSelector `json:"selector,omitempty"`
	Values   map[string]string    `json:"values,omitempty"`
}

// GitGenerator yields one parameter set per directory of a repository.
type GitGenerator struct {
	RepoURL     string                  `json:"repoURL"`
	Revision    string                  `json:"revision,omitempty"`
	Directories []GitDirectoryGenerator `json:"directories,omitempty"`
	Files       []json.RawMessage       `json:"files,omitempty"`
}

// GitDirectoryGenerator is a path glob; Exclude drops matches.
type GitDirectoryGenerator struct {
	Path    string `json:"path"`
	Exclude bool   `json:"exclude,omitempty"`
}
