package render

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/providers"
)

type mode int

const (
	modeTyped  mode = iota // a lone placeholder takes the value's type
	modeString             // ConfigMap data, Secret data/stringData: always text
	modeBase64             // Secret data whose base64 text held placeholders
)

// site is one string field holding placeholders.
type site struct {
	doc       *manifest.Document
	path      []seg
	parent    *yaml.Node // mapping or sequence holding node
	node      *yaml.Node
	tmpl      reference.Template
	refs      []providers.Ref // one per placeholder part, in order; zero Ref where unresolvable
	mode      mode
	kind      string // the document's kind
	removable bool
}

func (s *site) field() string { return formatPath(s.path) }

// pathKeys is the site's path as manifest.Document.MarkSecret takes it.
func (s *site) pathKeys() []string {
	out := make([]string, len(s.path))
	for i, p := range s.path {
		if p.idx >= 0 {
			out[i] = strconv.Itoa(p.idx)
		} else {
			out[i] = p.key
		}
	}
	return out
}

// docContext is what a document's annotations say about its references.
type docContext struct {
	kind          string
	genericPath   string
	version       string
	params        string
	removeMissing bool
}

func readAnnotations(d *manifest.Document) (docContext, bool, error) {
	dc := docContext{kind: manifest.String(d.Root, "kind")}
	ann := manifest.Get(d.Root, "metadata", "annotations")
	get := func(k string) string { return manifest.String(ann, k) }
	if b, _ := strconv.ParseBool(get(AnnotationIgnore)); b {
		return dc, true, nil
	}
	dc.genericPath = get(AnnotationPath)
	if dc.genericPath != "" {
		if err := reference.CheckPath(dc.genericPath); err != nil {
			return dc, false, fmt.Errorf("annotation %s: %q is not a canonical secret path: %v", AnnotationPath, dc.genericPath, err)
		}
	}
	dc.version = get(AnnotationSecretVersion)
	if kv := get(AnnotationKVVersion); kv != "" {
		if kv != "1" && kv != "2" {
			return dc, false, fmt.Errorf("annotation %s: %q is not 1 or 2", AnnotationKVVersion, kv)
		}
		dc.params = url.Values{"kv-version": {kv}}.Encode()
	}
	if rm := get(AnnotationRemoveMissing); rm != "" {
		b, err := strconv.ParseBool(rm)
		if err != nil {
			return dc, false, fmt.Errorf("annotation %s: %q is not true or false", AnnotationRemoveMissing, rm)
		}
		if b && dc.kind != "Secret" && dc.kind != "ConfigMap" {
			return dc, false, fmt.Errorf("annotation %s applies only to Secret and ConfigMap, not %s", AnnotationRemoveMissing, dc.kind)
		}
		dc.removeMissing = b
	}
	return dc, false, nil
}

type walker struct {
	engine   *Engine
	doc      *manifest.Document
	dc       docContext
	sites    []*site
	problems []Problem
}

// seg is one step of a field path: a mapping key or a sequence index.
type seg struct {
	key string
	idx int // -1 for a key
}

func formatPath(path []seg) string {
	var b strings.Builder
	for i, p := range path {
		switch {
		case p.idx >= 0:
			b.WriteString("[" + strconv.Itoa(p.idx) + "]")
		case strings.ContainsAny(p.key, ".[]"):
			b.WriteString("[" + strconv.Quote(p.key) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.key)
		}
	}
	return b.String()
}

func (w *walker) walk(n, parent *yaml.Node, path []seg) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], n, append(path, seg{key: n.Content[i].Value, idx: -1}))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			w.walk(c, n, append(path, seg{idx: i}))
		}
	case yaml.ScalarNode:
		w.scalar(n, parent, path)
	}
	// Aliases are not followed: the anchored node is visited where it is defined, and
	// substituting it in place updates every alias.
}

func (w *walker) scalar(n, parent *yaml.Node, path []seg) {
	value := n.Value
	dataField := len(path) == 2 && path[1].idx < 0 && (path[0].key == "data" || path[0].key == "stringData" || path[0].key == "binaryData")
	isSecretData := w.dc.kind == "Secret" && dataField && path[0].key == "data"
	hit := reference.Contains(value)
	if !hit && !isSecretData {
		return
	}
	// Only strings hold references; checking the tag resolves the scalar, so it comes after
	// the cheap test above.
	if !manifest.IsString(n) {
		return
	}
	m := modeTyped
	if dataField && (w.dc.kind == "ConfigMap" || w.dc.kind == "Secret") {
		m = modeString
	}
	if hit {
		w.add(n, parent, path, value, m)
		return
	}
	// A base64 value whose decoded text holds placeholders: decode, substitute, re-encode.
	if dec, err := base64.StdEncoding.DecodeString(value); err == nil && reference.Contains(string(dec)) {
		w.add(n, parent, path, string(dec), modeBase64)
	}
}

func (w *walker) add(n, parent *yaml.Node, path []seg, text string, m mode) {
	tmpl, err := reference.Parse(text, reference.Options{Generic: w.dc.genericPath != ""})
	if err != nil {
		w.problems = append(w.problems, Problem{Source: w.doc.Source, Document: w.doc.Index, Field: formatPath(path), Reason: err.Error()})
		return
	}
	if !tmpl.HasPlaceholders() {
		return
	}
	s := &site{doc: w.doc, path: slices.Clone(path), parent: parent, node: n, tmpl: tmpl, mode: m, kind: w.dc.kind, removable: w.dc.removeMissing}
	for _, part := range tmpl.Parts {
		if part.Placeholder == nil {
			continue
		}
		ref, err := w.ref(part.Placeholder)
		if err == nil && w.engine.opts.Check != nil {
			err = w.engine.opts.Check(ref)
		}
		if err != nil {
			w.problems = append(w.problems, Problem{Source: w.doc.Source, Document: w.doc.Index, Field: s.field(), Reference: part.Placeholder.Raw, Reason: err.Error()})
			return
		}
		s.refs = append(s.refs, ref)
	}
	w.sites = append(w.sites, s)
}

// ref turns a placeholder into the secret it needs.
func (w *walker) ref(p *reference.Placeholder) (providers.Ref, error) {
	switch p.Kind {
	case reference.Path, reference.Generic:
		backend := w.engine.opts.DefaultBackend
		if backend == "" {
			return providers.Ref{}, fmt.Errorf("%w: no default backend for <path:…> placeholders; set --backend (or KEYWAY_BACKEND, AVP_TYPE)", providers.ErrNotConfigured)
		}
		path := p.Path
		if p.Kind == reference.Generic {
			path = w.dc.genericPath
		}
		version := p.Version
		if version == "" {
			version = w.dc.version
		}
		return providers.Ref{Backend: backend, Path: path, Version: version, Params: w.dc.params}, nil
	default:
		ref := providers.Ref{Backend: p.Backend, Path: p.Path, Version: p.Version, Params: p.Params}
		if p.Backend == "file" {
			path, err := confineFile(w.doc, p.Path)
			if err != nil {
				return providers.Ref{}, err
			}
			ref.Path = path
		}
		return ref, nil
	}
}
