// Package crds holds the CustomResourceDefinitions keyway serves: External Secrets'
// ExternalSecret, SecretStore, ClusterSecretStore and ClusterExternalSecret, generated from sync/api's Go types
// by controller-gen (`make generate`), and Sealed Secrets' SealedSecret.
package crds

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"

	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// servedAlso are the versions each group serves from its storage version's schema: the
// guides users follow still write external-secrets.io/v1beta1, which has the same fields.
var servedAlso = map[string][]string{"external-secrets.io": {"v1beta1"}}

// All returns every CRD as one YAML stream, in file-name order.
func All() ([]byte, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out bytes.Buffer
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := withServedVersions(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out.WriteString("---\n")
		out.Write(doc)
	}
	return out.Bytes(), nil
}

// withServedVersions adds, after the storage version, a served copy of it under each
// version in servedAlso for the CRD's group (no conversion: the schemas are the same).
func withServedVersions(data []byte) ([]byte, error) {
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, err
	}
	spec, _ := crd["spec"].(map[string]any)
	group, _ := spec["group"].(string)
	versions, _ := spec["versions"].([]any)
	if len(servedAlso[group]) > 0 {
		if len(versions) != 1 {
			return nil, fmt.Errorf("want one generated version, found %d", len(versions))
		}
		for _, v := range servedAlso[group] {
			cp, err := deepCopy(versions[0])
			if err != nil {
				return nil, err
			}
			m := cp.(map[string]any)
			m["name"], m["storage"], m["served"] = v, false, true
			versions = append(versions, m)
		}
		spec["versions"] = versions
	}
	return yaml.Marshal(crd)
}

func deepCopy(v any) (any, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, yaml.Unmarshal(b, &out)
}
