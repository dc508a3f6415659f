package v1

import "github.com/keyway-dev/keyway/sync/api/apifields"

// The tables below say, for every field of External Secrets' ExternalSecret and
// SecretStore/ClusterSecretStore (as ESO v1.3.2's published CRDs have them), what keyway's
// syncer does with it. A test walks those CRDs (from ESO's module) and fails on a field in
// neither; an object with a refused field is refused naming it, with a condition, and
// nothing is written. A reference taken whole (a Secret key selector, a service account)
// is listed without its fields: keyway reads all of them.

const (
	noteNoPush      = "only used when pushing secrets, which keyway does not do"
	noteNoGenerator = "generators and per-entry stores are not supported"
)

// ExternalSecretFields is keyway's support for each field of an ExternalSecret.
var ExternalSecretFields = apifields.New("ExternalSecret", []apifields.Field{
	{Path: "spec", Support: apifields.Supported},
	{Path: "spec.secretStoreRef", Support: apifields.Supported},
	{Path: "spec.secretStoreRef.kind", Support: apifields.Supported},
	{Path: "spec.secretStoreRef.name", Support: apifields.Supported},
	{Path: "spec.refreshInterval", Support: apifields.Supported},
	{Path: "spec.refreshPolicy", Support: apifields.Supported},
	{Path: "spec.data", Support: apifields.Supported},
	{Path: "spec.data[].secretKey", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef.key", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef.property", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef.version", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef.decodingStrategy", Support: apifields.Supported},
	{Path: "spec.data[].remoteRef.conversionStrategy", Support: apifields.NoEffect, Note: "ESO converts the keys dataFrom finds; a data[] entry names its key"},
	{Path: "spec.data[].remoteRef.metadataPolicy", Support: apifields.Supported, Note: "Fetch for Vault stores (custom_metadata); refused for the others"},
	{Path: "spec.data[].sourceRef", Support: apifields.Refused, Note: noteNoGenerator},
	{Path: "spec.dataFrom", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.key", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.property", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.version", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.decodingStrategy", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.conversionStrategy", Support: apifields.Supported},
	{Path: "spec.dataFrom[].extract.metadataPolicy", Support: apifields.Supported, Note: "Fetch for Vault stores (custom_metadata); refused for the others"},
	{Path: "spec.dataFrom[].find", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.path", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.name", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.name.regexp", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.tags", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.decodingStrategy", Support: apifields.Supported},
	{Path: "spec.dataFrom[].find.conversionStrategy", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite[].regexp", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite[].regexp.source", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite[].regexp.target", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite[].merge", Support: apifields.Refused},
	{Path: "spec.dataFrom[].rewrite[].transform", Support: apifields.Supported},
	{Path: "spec.dataFrom[].rewrite[].transform.template", Support: apifields.Supported},
	{Path: "spec.dataFrom[].sourceRef", Support: apifields.Refused, Note: noteNoGenerator},
	{Path: "spec.target", Support: apifields.Supported},
	{Path: "spec.target.name", Support: apifields.Supported},
	{Path: "spec.target.creationPolicy", Support: apifields.Supported},
	{Path: "spec.target.deletionPolicy", Support: apifields.Supported},
	{Path: "spec.target.immutable", Support: apifields.Supported},
	{Path: "spec.target.manifest", Support: apifields.Refused, Note: "keyway writes Secrets only"},
	{Path: "spec.target.template", Support: apifields.Supported},
	{Path: "spec.target.template.type", Support: apifields.Supported},
	{Path: "spec.target.template.engineVersion", Support: apifields.Refused, Allowed: []string{"v2"}, Note: "keyway implements template engine v2"},
	{Path: "spec.target.template.mergePolicy", Support: apifields.Supported},
	{Path: "spec.target.template.data", Support: apifields.Supported},
	{Path: "spec.target.template.metadata", Support: apifields.Supported},
	{Path: "spec.target.template.metadata.labels", Support: apifields.Supported},
	{Path: "spec.target.template.metadata.annotations", Support: apifields.Supported},
	{Path: "spec.target.template.metadata.finalizers", Support: apifields.Refused},
	{Path: "spec.target.template.templateFrom", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].target", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].literal", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].configMap", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].configMap.name", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].configMap.items", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].configMap.items[].key", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].configMap.items[].templateAs", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].secret", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].secret.name", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].secret.items", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].secret.items[].key", Support: apifields.Supported},
	{Path: "spec.target.template.templateFrom[].secret.items[].templateAs", Support: apifields.Supported},
})

// ClusterExternalSecretFields is keyway's support for each field of a
// ClusterExternalSecret; the ExternalSecrets it makes are checked as ExternalSecrets.
var ClusterExternalSecretFields = apifields.New("ClusterExternalSecret", []apifields.Field{
	{Path: "spec", Support: apifields.Supported},
	{Path: "spec.externalSecretSpec", Support: apifields.Supported, Note: "each ExternalSecret made is checked as one"},
	{Path: "spec.externalSecretName", Support: apifields.Supported},
	{Path: "spec.externalSecretMetadata", Support: apifields.Supported},
	{Path: "spec.externalSecretMetadata.labels", Support: apifields.Supported},
	{Path: "spec.externalSecretMetadata.annotations", Support: apifields.Supported},
	{Path: "spec.namespaceSelector", Support: apifields.Supported},
	{Path: "spec.namespaceSelectors", Support: apifields.Supported},
	{Path: "spec.namespaces", Support: apifields.Supported},
	{Path: "spec.refreshTime", Support: apifields.Supported},
})

// SecretStoreFields is keyway's support for each field of a SecretStore or
// ClusterSecretStore: the Vault, AWS, GCP and fake providers, and no other.
var SecretStoreFields = apifields.New("SecretStore", append([]apifields.Field{
	{Path: "spec", Support: apifields.Supported},
	{Path: "spec.controller", Support: apifields.Supported},
	{Path: "spec.refreshInterval", Support: apifields.Refused, Note: "stores are validated again on keyway's own schedule"},
	{Path: "spec.retrySettings", Support: apifields.Refused, Note: "keyway's own retries and back-off apply"},
	{Path: "spec.conditions", Support: apifields.Supported},
	{Path: "spec.conditions[].namespaceSelector", Support: apifields.Supported},
	{Path: "spec.conditions[].namespaces", Support: apifields.Supported},
	{Path: "spec.conditions[].namespaceRegexes", Support: apifields.Supported},
	{Path: "spec.provider", Support: apifields.Supported, Note: "vault, aws, gcpsm and fake; any other provider is refused"},

	{Path: "spec.provider.vault", Support: apifields.Supported},
	{Path: "spec.provider.vault.server", Support: apifields.Supported},
	{Path: "spec.provider.vault.path", Support: apifields.Supported},
	{Path: "spec.provider.vault.version", Support: apifields.Supported},
	{Path: "spec.provider.vault.namespace", Support: apifields.Supported},
	{Path: "spec.provider.vault.caBundle", Support: apifields.Refused, Note: "the controller trusts the system's CAs"},
	{Path: "spec.provider.vault.caProvider", Support: apifields.Refused, Note: "the controller trusts the system's CAs"},
	{Path: "spec.provider.vault.tls", Support: apifields.Refused, Note: "client certificates are not supported"},
	{Path: "spec.provider.vault.headers", Support: apifields.Refused},
	{Path: "spec.provider.vault.readYourWrites", Support: apifields.Refused},
	{Path: "spec.provider.vault.forwardInconsistent", Support: apifields.Refused},
	{Path: "spec.provider.vault.checkAndSet", Support: apifields.NoEffect, Note: noteNoPush},
	{Path: "spec.provider.vault.auth", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.namespace", Support: apifields.Refused, Note: "the login uses vault.namespace"},
	{Path: "spec.provider.vault.auth.tokenSecretRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.appRole", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.appRole.path", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.appRole.roleId", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.appRole.roleRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.appRole.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.kubernetes", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.kubernetes.mountPath", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.kubernetes.role", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.kubernetes.serviceAccountRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.kubernetes.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.path", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.role", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.kubernetesServiceAccountToken", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.kubernetesServiceAccountToken.serviceAccountRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.kubernetesServiceAccountToken.audiences", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.jwt.kubernetesServiceAccountToken.expirationSeconds", Support: apifields.Refused, Note: "tokens are requested with keyway's own lifetime"},
	{Path: "spec.provider.vault.auth.userPass", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.userPass.path", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.userPass.username", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.userPass.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.vault.auth.cert", Support: apifields.Refused},
	{Path: "spec.provider.vault.auth.gcp", Support: apifields.Refused},
	{Path: "spec.provider.vault.auth.iam", Support: apifields.Refused},
	{Path: "spec.provider.vault.auth.ldap", Support: apifields.Refused},

	{Path: "spec.provider.aws", Support: apifields.Supported},
	{Path: "spec.provider.aws.service", Support: apifields.Supported},
	{Path: "spec.provider.aws.region", Support: apifields.Supported},
	{Path: "spec.provider.aws.role", Support: apifields.Supported},
	{Path: "spec.provider.aws.externalID", Support: apifields.Supported},
	{Path: "spec.provider.aws.prefix", Support: apifields.Refused},
	{Path: "spec.provider.aws.auth", Support: apifields.Supported},
	{Path: "spec.provider.aws.auth.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.aws.auth.jwt", Support: apifields.Supported},
	{Path: "spec.provider.aws.additionalRoles", Support: apifields.Refused},
	{Path: "spec.provider.aws.sessionTags", Support: apifields.Refused},
	{Path: "spec.provider.aws.transitiveTagKeys", Support: apifields.Refused},
	{Path: "spec.provider.aws.secretsManager", Support: apifields.NoEffect, Note: noteNoPush},

	{Path: "spec.provider.gcpsm", Support: apifields.Supported},
	{Path: "spec.provider.gcpsm.projectID", Support: apifields.Supported},
	{Path: "spec.provider.gcpsm.location", Support: apifields.Supported},
	{Path: "spec.provider.gcpsm.auth", Support: apifields.Supported},
	{Path: "spec.provider.gcpsm.auth.secretRef", Support: apifields.Supported},
	{Path: "spec.provider.gcpsm.auth.workloadIdentity", Support: apifields.Refused, Note: "use auth.secretRef, or a ClusterSecretStore without auth (the controller's own identity)"},
	{Path: "spec.provider.gcpsm.auth.workloadIdentityFederation", Support: apifields.Refused},
	{Path: "spec.provider.gcpsm.secretVersionSelectionPolicy", Support: apifields.Refused, Allowed: []string{"LatestOrFail"}, Note: "the latest version is read, and a disabled one fails"},

	{Path: "spec.provider.fake", Support: apifields.Supported},
	{Path: "spec.provider.fake.data", Support: apifields.Supported},
	{Path: "spec.provider.fake.validationResult", Support: apifields.Refused},
}, otherProviders()...))

// otherProviders are ESO's providers keyway does not read: each is refused.
func otherProviders() []apifields.Field {
	var out []apifields.Field
	for _, p := range []string{"akeyless", "alibaba", "azurekv", "barbican", "beyondtrust", "bitwardensecretsmanager", "chef", "cloudrusm",
		"conjur", "delinea", "device42", "doppler", "dvls", "fortanix", "github", "gitlab", "ibm", "infisical", "keepersecurity", "kubernetes",
		"ngrok", "onboardbase", "onepassword", "onepasswordSDK", "oracle", "passbolt", "passworddepot", "previder", "pulumi", "scaleway",
		"secretserver", "senhasegura", "volcengine", "webhook", "yandexcertificatemanager", "yandexlockbox"} {
		out = append(out, apifields.Field{Path: "spec.provider." + p, Support: apifields.Refused, Note: "keyway reads Vault, AWS, GCP Secret Manager and the fake provider"})
	}
	return out
}

// SupportTable is docs/eso-fields.md: the tables above as Markdown.
func SupportTable() string {
	return `# External Secrets fields in keyway

What ` + "`keyway controller`" + `'s syncer does with each field of External Secrets' ExternalSecret
and SecretStore / ClusterSecretStore (ESO v1.3.2's CRDs). **supported**: it means what it
means in ESO. **no effect**: accepted, and it changes nothing, for the reason given.
**refused**: set to anything but its default (or a value listed), the object gets a
condition naming the field and nothing is written — never accepted and ignored. A field
that is not ESO's at all (a typo) is refused too. A reference listed without its fields (a
Secret key selector, a service account) is read whole.

Generated from ` + "`sync/api/externalsecrets/v1/support.go`" + `; ` + "`TestEveryESOFieldClassified`" + ` walks ESO's
published CRDs and proves every field is listed (or inside one taken whole) and every
refused field is refused.

## ExternalSecret

` + ExternalSecretFields.Markdown() + `
## ClusterExternalSecret

` + ClusterExternalSecretFields.Markdown() + `
## SecretStore and ClusterSecretStore

` + SecretStoreFields.Markdown()
}
