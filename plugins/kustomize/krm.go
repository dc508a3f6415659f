package kustomize

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
)

// ErrNotResourceList is the error of an input that is not a KRM ResourceList.
var ErrNotResourceList = errors.New("not a KRM ResourceList")

// maxResourceList bounds the ResourceList a function reads.
const maxResourceList = 256 << 20

// ResourceList is a KRM function's input (the KRM Functions Specification): its items as
// documents to change in place, and its functionConfig's data.
type ResourceList struct {
	Items  []*manifest.Document
	Config map[string]any // functionConfig.data; nil when there is none

	doc       yaml.Node
	items     *yaml.Node
	originals []*yaml.Node // the items as they came, for a failure
}

// Result is one entry of a ResourceList's results.
type Result struct {
	Message  string
	Severity string // error, warning, info
	Field    string // the field path, when the result is about one field
}

// ReadResourceList reads a ResourceList from in; its items' relative references resolve
// against dir and may not leave it.
func ReadResourceList(in io.Reader, dir string, limits manifest.Limits) (*ResourceList, error) {
	data, err := io.ReadAll(io.LimitReader(in, maxResourceList+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResourceList {
		return nil, fmt.Errorf("%w: it is larger than %d bytes", ErrNotResourceList, maxResourceList)
	}
	rl := &ResourceList{}
	if err := yaml.Unmarshal(data, &rl.doc); err != nil || rl.doc.Kind != yaml.DocumentNode || len(rl.doc.Content) == 0 {
		return nil, ErrNotResourceList
	}
	root := rl.doc.Content[0]
	if kind := manifest.String(root, "kind"); kind != "ResourceList" {
		return nil, fmt.Errorf("%w: its kind is %q", ErrNotResourceList, kind)
	}
	if fc := manifest.Get(root, "functionConfig", "data"); fc != nil {
		if err := fc.Decode(&rl.Config); err != nil {
			return nil, fmt.Errorf("functionConfig.data: %w", err)
		}
	}
	rl.items = manifest.Get(root, "items")
	if rl.items == nil {
		return rl, nil
	}
	for i, it := range rl.items.Content {
		rl.originals = append(rl.originals, manifest.DeepCopy(it))
		d, err := manifest.FromNode(it, "items", i, limits)
		if err != nil {
			return nil, err
		}
		d.Dir, d.Confine = dir, dir
		rl.Items = append(rl.Items, d)
	}
	return rl, nil
}

// Write writes the ResourceList to w: its items as changed, or, with results, its items as
// they came (nothing half-changed) and the results.
func (rl *ResourceList) Write(w io.Writer, results []Result) error {
	if len(results) > 0 {
		if rl.items != nil {
			copy(rl.items.Content, rl.originals)
		}
		type field struct {
			Path string `yaml:"path"`
		}
		type result struct {
			Message  string `yaml:"message"`
			Severity string `yaml:"severity"`
			Field    *field `yaml:"field,omitempty"`
		}
		out := make([]result, 0, len(results))
		for _, r := range results {
			e := result{Message: r.Message, Severity: r.Severity}
			if r.Field != "" {
				e.Field = &field{r.Field}
			}
			out = append(out, e)
		}
		var rn yaml.Node
		if err := rn.Encode(out); err != nil {
			return err
		}
		manifest.Set(rl.doc.Content[0], "results", &rn)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&rl.doc); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}
