package externalsecrets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/tmplfuncs"
	esv1 "github.com/keyway-dev/keyway/sync/api/externalsecrets/v1"
)

// templateSource reads the data of a ConfigMap or Secret of the ExternalSecret's
// namespace, for templateFrom.
type templateSource func(kind, name string) (map[string]string, error)

// render builds the target's data, type and metadata from the values and the template:
// template.data entries, then templateFrom (ConfigMap or Secret items, or a literal),
// each a Go template over the values. All of them run on one template budget
// (internal/tmplfuncs) that ctx also ends.
func render(ctx context.Context, es *esv1.ExternalSecret, values map[string][]byte, source templateSource) (map[string][]byte, corev1.SecretType, esv1.ExternalSecretTemplateMetadata, error) {
	t := es.Spec.Target.Template
	if t == nil {
		// Without a template the Secret takes the ExternalSecret's own labels and
		// annotations, as in ESO.
		return values, corev1.SecretTypeOpaque, esv1.ExternalSecretTemplateMetadata{Labels: maps.Clone(es.Labels), Annotations: maps.Clone(es.Annotations)}, nil
	}
	typ := t.Type
	if typ == "" {
		typ = corev1.SecretTypeOpaque
	}
	var meta esv1.ExternalSecretTemplateMetadata
	vals := map[string]string{}
	for k, v := range values {
		vals[k] = string(v)
	}
	out := map[string][]byte{}
	if t.MergePolicy == "Merge" || len(t.Data) == 0 && len(t.TemplateFrom) == 0 {
		// Merge keeps the values beside the template's keys; a template with neither data
		// nor templateFrom (type or metadata only) keeps the values as they are, as in ESO.
		maps.Copy(out, values)
	}
	budget := tmplfuncs.NewBudget(ctx, tmplfuncs.DefaultLimits())
	// exec runs one template; secretText says it came from a Secret, whose text a parse
	// error would quote.
	exec := func(where, text string, secretText bool) (string, error) {
		tpl, err := budget.Parse(where, text, "error")
		if errors.Is(err, tmplfuncs.ErrBudget) {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		if err != nil && secretText {
			return "", refusal{fmt.Sprintf("%s does not parse as a template", where)}
		}
		if err != nil {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		out, err := tpl.Execute(vals)
		if errors.Is(err, tmplfuncs.ErrBudget) {
			return "", refusal{fmt.Sprintf("%s: %v", where, err)}
		}
		if err != nil {
			// The cause may quote a value: name the place only.
			return "", refusal{fmt.Sprintf("%s cannot be rendered (check the keys it uses)", where)}
		}
		return out, nil
	}
	put := func(target esv1.TemplateTarget, k, v string) {
		switch target {
		case "Annotations":
			if meta.Annotations == nil {
				meta.Annotations = map[string]string{}
			}
			meta.Annotations[k] = v
		case "Labels":
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			meta.Labels[k] = v
		default:
			out[k] = []byte(v)
		}
	}
	for i, tf := range t.TemplateFrom {
		if err := templateFrom(fmt.Sprintf("target.template.templateFrom[%d]", i), tf, exec, put, source); err != nil {
			return nil, "", meta, err
		}
	}
	// As ESO: templateFrom first, then template.data (which wins on the same key), then
	// the metadata's labels and annotations, each value a template too.
	for _, k := range slices.Sorted(maps.Keys(t.Data)) {
		v, err := exec(fmt.Sprintf("target.template.data %q", k), t.Data[k], false)
		if err != nil {
			return nil, "", meta, err
		}
		out[k] = []byte(v)
	}
	for _, target := range []struct {
		name string
		from map[string]string
		put  esv1.TemplateTarget
	}{{"labels", t.Metadata.Labels, "Labels"}, {"annotations", t.Metadata.Annotations, "Annotations"}} {
		for _, k := range slices.Sorted(maps.Keys(target.from)) {
			v, err := exec(fmt.Sprintf("target.template.metadata.%s %q", target.name, k), target.from[k], false)
			if err != nil {
				return nil, "", meta, err
			}
			put(target.put, k, v)
		}
	}
	return out, typ, meta, nil
}

// templateFrom renders one templateFrom entry (where names it) through exec, handing each
// key and value to put.
func templateFrom(where string, tf esv1.TemplateFrom, exec func(where, text string, secretText bool) (string, error), put func(esv1.TemplateTarget, string, string), source templateSource) error {
	if tf.Literal != nil {
		rendered, err := exec(where+".literal", *tf.Literal, false)
		if err != nil {
			return err
		}
		var m map[string]string
		if err := yaml.Unmarshal([]byte(rendered), &m); err != nil {
			return refusal{where + ".literal does not render to a mapping of strings"}
		}
		for k, v := range m {
			put(tf.Target, k, v)
		}
		return nil
	}
	kind, ref := "ConfigMap", tf.ConfigMap
	if tf.Secret != nil {
		kind, ref = "Secret", tf.Secret
	}
	if ref == nil {
		return refusal{where + " needs configMap, secret or literal"}
	}
	src, err := source(kind, ref.Name)
	if err != nil {
		return refusal{fmt.Sprintf("%s: %s %q: %v", where, kind, ref.Name, err)}
	}
	for _, item := range ref.Items {
		text, ok := src[item.Key]
		if !ok {
			return refusal{fmt.Sprintf("%s: %s %q has no key %q", where, kind, ref.Name, item.Key)}
		}
		rendered, err := exec(fmt.Sprintf("%s (%s %s, key %s)", where, kind, ref.Name, item.Key), text, kind == "Secret")
		if err != nil {
			return err
		}
		if item.TemplateAs == "KeysAndValues" {
			var m map[string]string
			if err := yaml.Unmarshal([]byte(rendered), &m); err != nil {
				return refusal{fmt.Sprintf("%s: key %s does not render to a mapping of strings", where, item.Key)}
			}
			for k, v := range m {
				put(tf.Target, k, v)
			}
			continue
		}
		put(tf.Target, item.Key, rendered)
	}
	return nil
}
