package v1alpha1

import (
	"fmt"
	"strings"
)

// The tables below say, for every field of Argo CD's Application, ApplicationSet and
// AppProject (as Argo CD's published CRDs have them), what keyway does with it. A test
// walks the CRD schemas from Argo CD's install.yaml and fails on a field that is in
// neither, and sets each refused field to prove it is refused; the README's table is
// generated from them (go run ./sync/api/argocd/v1alpha1/gen).

const (
	noteRender   = "keyway renders a source itself and has no such setting"
	noteNoRepo   = "charts come from git; Helm repositories and OCI registries are not supported"
	noteProject  = "ignoring it would let applications do what the project forbids"
	noteNoObject = "keyway keeps generated Applications in memory, not as objects anyone edits"
)

// ApplicationFields is keyway's support for each field of an Application.
var ApplicationFields = newFields("Application", []Field{
	{Path: "operation", Support: Refused, Note: "an operation in a manifest is not a sync request keyway acts on"},
	{Path: "spec", Support: Supported},
	{Path: "spec.destination", Support: Supported},
	{Path: "spec.destination.name", Support: Supported},
	{Path: "spec.destination.namespace", Support: Supported},
	{Path: "spec.destination.server", Support: Supported},
	{Path: "spec.ignoreDifferences", Support: Supported},
	{Path: "spec.ignoreDifferences[].group", Support: Supported, Note: "a glob, as in Argo CD"},
	{Path: "spec.ignoreDifferences[].kind", Support: Supported, Note: "a glob, as in Argo CD"},
	{Path: "spec.ignoreDifferences[].name", Support: Supported},
	{Path: "spec.ignoreDifferences[].namespace", Support: Supported},
	{Path: "spec.ignoreDifferences[].jsonPointers", Support: Supported},
	{Path: "spec.ignoreDifferences[].jqPathExpressions", Support: Supported},
	{Path: "spec.ignoreDifferences[].managedFieldsManagers", Support: Supported},
	{Path: "spec.info", Support: NoEffect, Note: "information for Argo CD's UI; it never affected a sync"},
	{Path: "spec.project", Support: Supported},
	{Path: "spec.revisionHistoryLimit", Support: NoEffect, Note: "keyway keeps no sync history, so any limit holds"},
	{Path: "spec.source", Support: Supported},
	{Path: "spec.source.repoURL", Support: Supported},
	{Path: "spec.source.path", Support: Supported},
	{Path: "spec.source.targetRevision", Support: Supported},
	{Path: "spec.source.name", Support: NoEffect, Note: "a label for one of several sources"},
	{Path: "spec.source.chart", Support: Refused, Note: noteNoRepo},
	{Path: "spec.source.ref", Support: Refused, Note: "only for multiple sources, which are not supported"},
	{Path: "spec.source.tagPrefix", Support: Refused},
	{Path: "spec.source.directory", Support: Supported},
	{Path: "spec.source.directory.recurse", Support: Supported},
	{Path: "spec.source.directory.include", Support: Supported},
	{Path: "spec.source.directory.exclude", Support: Supported},
	{Path: "spec.source.directory.disableExtensionFilter", Support: Refused, Note: "keyway reads .yaml, .yml and .json files only"},
	{Path: "spec.source.directory.jsonnet", Support: Refused, Note: "jsonnet is not supported"},
	{Path: "spec.source.helm", Support: Supported},
	{Path: "spec.source.helm.releaseName", Support: Supported},
	{Path: "spec.source.helm.namespace", Support: Supported},
	{Path: "spec.source.helm.valueFiles", Support: Supported},
	{Path: "spec.source.helm.values", Support: Supported},
	{Path: "spec.source.helm.valuesObject", Support: Supported},
	{Path: "spec.source.helm.parameters", Support: Supported},
	{Path: "spec.source.helm.parameters[].name", Support: Supported},
	{Path: "spec.source.helm.parameters[].value", Support: Supported},
	{Path: "spec.source.helm.parameters[].forceString", Support: Supported},
	{Path: "spec.source.helm.skipCrds", Support: Supported},
	{Path: "spec.source.helm.kubeVersion", Support: Supported},
	{Path: "spec.source.helm.apiVersions", Support: Supported},
	{Path: "spec.source.helm.fileParameters", Support: Refused},
	{Path: "spec.source.helm.ignoreMissingValueFiles", Support: Refused, Note: "a missing value file fails the render"},
	{Path: "spec.source.helm.passCredentials", Support: Refused, Note: noteNoRepo},
	{Path: "spec.source.helm.skipSchemaValidation", Support: Refused},
	{Path: "spec.source.helm.skipTests", Support: Refused},
	{Path: "spec.source.helm.version", Support: Refused, Allowed: []string{"v3"}, Note: "keyway renders with Helm 3"},
	{Path: "spec.source.kustomize", Support: Supported, Note: "an empty kustomize: {} selects kustomize; no override is supported"},
	{Path: "spec.source.kustomize.apiVersions", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.commonAnnotations", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.commonAnnotationsEnvsubst", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.commonLabels", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.components", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.forceCommonAnnotations", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.forceCommonLabels", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.ignoreMissingComponents", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.images", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.kubeVersion", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.labelIncludeTemplates", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.labelWithoutSelector", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.namePrefix", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.nameSuffix", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.namespace", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.patches", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.replicas", Support: Refused, Note: noteRender},
	{Path: "spec.source.kustomize.version", Support: Refused, Note: "keyway builds with its own kustomize"},
	{Path: "spec.source.plugin", Support: Supported, Note: "keyway is the plugin"},
	{Path: "spec.source.plugin.name", Support: Refused, Allowed: []string{"keyway", "keyway-v1"}, Note: "only keyway's own plugin (keyway, keyway-v1): another plugin's render is not keyway's"},
	{Path: "spec.source.plugin.env", Support: Supported},
	{Path: "spec.source.plugin.env[].name", Support: Supported},
	{Path: "spec.source.plugin.env[].value", Support: Supported},
	{Path: "spec.source.plugin.parameters", Support: Refused, Note: "the daemon reads the plugin's env, not its parameters"},
	{Path: "spec.sources", Support: Refused, Note: "multiple sources are not supported; use spec.source"},
	{Path: "spec.sourceHydrator", Support: Refused},
	{Path: "spec.syncPolicy", Support: Supported},
	{Path: "spec.syncPolicy.automated", Support: Supported},
	{Path: "spec.syncPolicy.automated.prune", Support: Supported},
	{Path: "spec.syncPolicy.automated.selfHeal", Support: Supported},
	{Path: "spec.syncPolicy.automated.allowEmpty", Support: Supported},
	{Path: "spec.syncPolicy.automated.enabled", Support: Supported},
	{Path: "spec.syncPolicy.syncOptions", Support: Supported, Note: "each option is checked: see the sync options"},
	{Path: "spec.syncPolicy.managedNamespaceMetadata", Support: Supported},
	{Path: "spec.syncPolicy.managedNamespaceMetadata.labels", Support: Supported},
	{Path: "spec.syncPolicy.managedNamespaceMetadata.annotations", Support: Supported},
	{Path: "spec.syncPolicy.retry", Support: Supported},
	{Path: "spec.syncPolicy.retry.limit", Support: Supported},
	{Path: "spec.syncPolicy.retry.backoff", Support: Supported},
	{Path: "spec.syncPolicy.retry.backoff.duration", Support: Supported},
	{Path: "spec.syncPolicy.retry.backoff.factor", Support: Supported},
	{Path: "spec.syncPolicy.retry.backoff.maxDuration", Support: Supported},
	{Path: "spec.syncPolicy.retry.refresh", Support: NoEffect, Note: "a retry always reads git again"},
})

// SetFields is keyway's support for each field of an ApplicationSet. The template makes
// Applications, which are checked against ApplicationFields once generated.
var SetFields = newFields("ApplicationSet", []Field{
	{Path: "spec", Support: Supported},
	{Path: "spec.goTemplate", Support: Supported},
	{Path: "spec.goTemplateOptions", Support: Supported},
	{Path: "spec.template", Support: Supported, Note: "each generated Application is checked as one"},
	{Path: "spec.templatePatch", Support: Refused},
	{Path: "spec.generators", Support: Supported},
	{Path: "spec.generators[].list", Support: Supported},
	{Path: "spec.generators[].list.elements", Support: Supported},
	{Path: "spec.generators[].list.elementsYaml", Support: Refused},
	{Path: "spec.generators[].list.template", Support: Refused, Note: "a generator's own template"},
	{Path: "spec.generators[].clusters", Support: Supported},
	{Path: "spec.generators[].clusters.selector", Support: Supported},
	{Path: "spec.generators[].clusters.values", Support: Supported},
	{Path: "spec.generators[].clusters.flatList", Support: Refused},
	{Path: "spec.generators[].clusters.template", Support: Refused, Note: "a generator's own template"},
	{Path: "spec.generators[].git", Support: Supported},
	{Path: "spec.generators[].git.repoURL", Support: Supported},
	{Path: "spec.generators[].git.revision", Support: Supported},
	{Path: "spec.generators[].git.directories", Support: Supported},
	{Path: "spec.generators[].git.directories[].path", Support: Supported},
	{Path: "spec.generators[].git.directories[].exclude", Support: Supported},
	{Path: "spec.generators[].git.files", Support: Refused, Note: "git directories are supported, git files are not"},
	{Path: "spec.generators[].git.pathParamPrefix", Support: Refused},
	{Path: "spec.generators[].git.values", Support: Refused},
	{Path: "spec.generators[].git.template", Support: Refused, Note: "a generator's own template"},
	{Path: "spec.generators[].git.requeueAfterSeconds", Support: NoEffect, Note: "sets are generated again every --interval"},
	{Path: "spec.generators[].matrix", Support: Refused},
	{Path: "spec.generators[].merge", Support: Refused},
	{Path: "spec.generators[].oci", Support: Refused},
	{Path: "spec.generators[].plugin", Support: Refused},
	{Path: "spec.generators[].pullRequest", Support: Refused},
	{Path: "spec.generators[].scmProvider", Support: Refused},
	{Path: "spec.generators[].clusterDecisionResource", Support: Refused},
	{Path: "spec.generators[].selector", Support: Refused, Note: "a post-selector would drop parameter sets"},
	{Path: "spec.applyNestedSelectors", Support: NoEffect, Note: "only for matrix and merge, which are refused"},
	{Path: "spec.ignoreApplicationDifferences", Support: NoEffect, Note: noteNoObject},
	{Path: "spec.preservedFields", Support: NoEffect, Note: noteNoObject},
	{Path: "spec.strategy", Support: Refused, Note: "progressive syncs are not supported"},
	{Path: "spec.syncPolicy", Support: Supported},
	{Path: "spec.syncPolicy.preserveResourcesOnDeletion", Support: Supported},
	{Path: "spec.syncPolicy.applicationsSync", Support: Refused, Allowed: []string{"sync"}, Note: "generated applications are always created, updated and deleted"},
})

// ProjectFields is keyway's support for each field of an AppProject.
var ProjectFields = newFields("AppProject", []Field{
	{Path: "spec", Support: Supported},
	{Path: "spec.description", Support: NoEffect, Note: "text"},
	{Path: "spec.sourceRepos", Support: Supported, Note: "globs; a negated '!' pattern is refused"},
	{Path: "spec.destinations", Support: Supported},
	{Path: "spec.destinations[].server", Support: Supported, Note: "a negated '!' pattern is refused"},
	{Path: "spec.destinations[].name", Support: Supported, Note: "a negated '!' pattern is refused"},
	{Path: "spec.destinations[].namespace", Support: Supported, Note: "a negated '!' pattern is refused"},
	{Path: "spec.clusterResourceWhitelist", Support: Supported},
	{Path: "spec.clusterResourceWhitelist[].group", Support: Supported},
	{Path: "spec.clusterResourceWhitelist[].kind", Support: Supported},
	{Path: "spec.clusterResourceWhitelist[].name", Support: Refused, Note: noteProject},
	{Path: "spec.clusterResourceBlacklist", Support: Supported},
	{Path: "spec.clusterResourceBlacklist[].group", Support: Supported},
	{Path: "spec.clusterResourceBlacklist[].kind", Support: Supported},
	{Path: "spec.clusterResourceBlacklist[].name", Support: Refused, Note: noteProject},
	{Path: "spec.namespaceResourceWhitelist", Support: Supported},
	{Path: "spec.namespaceResourceWhitelist[].group", Support: Supported},
	{Path: "spec.namespaceResourceWhitelist[].kind", Support: Supported},
	{Path: "spec.namespaceResourceBlacklist", Support: Supported},
	{Path: "spec.namespaceResourceBlacklist[].group", Support: Supported},
	{Path: "spec.namespaceResourceBlacklist[].kind", Support: Supported},
	{Path: "spec.destinationServiceAccounts", Support: Refused, Note: "keyway applies with its own identity; " + noteProject},
	{Path: "spec.permitOnlyProjectScopedClusters", Support: Refused, Note: noteProject},
	{Path: "spec.signatureKeys", Support: Refused, Note: "commit signatures are not verified; " + noteProject},
	{Path: "spec.sourceIntegrity", Support: Refused, Note: "commit signatures are not verified; " + noteProject},
	{Path: "spec.sourceNamespaces", Support: Refused, Note: noteProject},
	{Path: "spec.syncWindows", Support: Refused, Note: "sync windows are not supported; " + noteProject},
	{Path: "spec.orphanedResources", Support: NoEffect, Note: "it only warns in Argo CD's UI, which keyway does not have"},
	{Path: "spec.roles", Support: NoEffect, Note: "roles govern Argo CD's API and UI, which keyway does not have"},
})

// SyncOptionSupport is keyway's support for each of Argo CD's sync options, as an
// Application's spec.syncPolicy.syncOptions (Path "Name=value") or, marked "resource",
// an object's argocd.argoproj.io/sync-options annotation.
var SyncOptionSupport = []Field{
	{Path: "CreateNamespace=true", Support: Supported},
	{Path: "CreateNamespace=false", Support: Supported},
	{Path: "RespectIgnoreDifferences=true", Support: Supported},
	{Path: "RespectIgnoreDifferences=false", Support: Supported},
	{Path: "Prune=false", Support: Supported, Note: "application and resource: nothing (that object) is pruned"},
	{Path: "Prune=confirm", Support: Supported, Note: "resource: pruned once the operator confirms the revision"},
	{Path: "Delete=false", Support: Supported, Note: "resource: kept when its application is deleted"},
	{Path: "PrunePropagationPolicy=foreground", Support: Supported},
	{Path: "PrunePropagationPolicy=background", Support: Supported},
	{Path: "PrunePropagationPolicy=orphan", Support: Supported},
	{Path: "PruneLast=true", Support: Supported, Note: "keyway always prunes after the last wave"},
	{Path: "ApplyOutOfSyncOnly=true", Support: Supported, Note: "keyway always applies only what differs"},
	{Path: "FailOnSharedResource=true", Support: Supported, Note: "keyway always refuses an object another application tracks"},
	{Path: "ServerSideApply=true", Support: Supported, Note: "keyway always applies server-side"},
	{Path: "ServerSideApply=false", Support: NoEffect, Note: "keyway applies server-side; the fields a manifest sets end the same"},
	{Path: "Replace=true", Support: Supported, Note: "applied server-side; a change the API server refuses as immutable deletes and creates the object"},
	{Path: "Force=true", Support: Supported, Note: "as Replace=true"},
	{Path: "Validate=false", Support: Supported, Note: "the API server drops unknown fields with a warning"},
	{Path: "SkipDryRunOnMissingResource=true", Support: Refused, Note: "every object is dry-run before anything is written"},
	{Path: "Delete=confirm", Support: Refused},
}

// CheckSyncOption refuses a sync option keyway does not implement, or does not know,
// naming it (where says where it was found).
func CheckSyncOption(where, option string) error {
	option = strings.TrimSpace(option)
	if option == "" {
		return nil
	}
	for _, f := range SyncOptionSupport {
		if strings.EqualFold(f.Path, option) {
			if f.Support == Refused {
				return fmt.Errorf("%s: sync option %s is not supported by keyway: refused rather than ignored (%s)", where, option, f.Note)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: sync option %q is not one keyway knows (Argo CD's are Name=value, such as CreateNamespace=true): refused rather than ignored", where, option)
}

// SupportTable is docs/argocd-fields.md: the tables above as Markdown.
func SupportTable() string {
	var b strings.Builder
	b.WriteString(`# Argo CD fields in keyway

What ` + "`keyway daemon`" + ` does with each field of Argo CD's Application, ApplicationSet and
AppProject. **supported**: it means what it means in Argo CD. **no effect**: accepted, and it
changes nothing, for the reason given. **refused**: set to anything but its default (or a value
listed), the object is refused with an error naming the field — never accepted and ignored.
A field that is not in Argo CD's API at all (a typo) is refused too. A field inside one listed
as supported and not listed itself (a map of labels, Helm values) is taken as it is.

Generated from ` + "`sync/api/argocd/v1alpha1/support.go`" + `; ` + "`TestEveryFieldClassified`" + ` walks Argo CD's
published CRDs and proves every field is listed (or inside one taken whole) and every refused
field is refused.
`)
	for _, t := range []*Fields{ApplicationFields, SetFields, ProjectFields} {
		fmt.Fprintf(&b, "\n## %s\n\n%s", t.Kind, t.Markdown())
	}
	b.WriteString("\n## Sync options\n\n`spec.syncPolicy.syncOptions` and the `argocd.argoproj.io/sync-options` annotation. An option\nnot listed is refused.\n\n| option | keyway | note |\n|---|---|---|\n")
	for _, f := range SyncOptionSupport {
		b.WriteString(f.Row())
	}
	return b.String()
}
