package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keyway-dev/keyway/sync/api/apifields"
)

// Field support, as apifields has it.
type (
	Fields  = apifields.Fields
	Field   = apifields.Field
	Support = apifields.Support
)

const (
	Supported = apifields.Supported
	NoEffect  = apifields.NoEffect
	Refused   = apifields.Refused
)

var newFields = apifields.New

// DecodeApplication reads an Application from JSON: every field is checked against
// ApplicationFields (refused or unknown fields fail, naming the field), then what keyway
// needs is validated.
func DecodeApplication(raw []byte) (*Application, error) {
	var app Application
	if err := decodeChecked(raw, ApplicationFields, &app); err != nil {
		return nil, err
	}
	if err := app.Validate(); err != nil {
		return nil, err
	}
	return &app, nil
}

// DecodeApplicationSet reads an ApplicationSet from JSON, checked against SetFields.
func DecodeApplicationSet(raw []byte) (*ApplicationSet, error) {
	var set ApplicationSet
	if err := decodeChecked(raw, SetFields, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

// DecodeAppProject reads an AppProject from JSON, checked against ProjectFields and for
// negated patterns, which keyway does not read.
func DecodeAppProject(raw []byte) (*AppProject, error) {
	var p AppProject
	if err := decodeChecked(raw, ProjectFields, &p); err != nil {
		return nil, err
	}
	negated := func(field, v string) error {
		if strings.HasPrefix(v, "!") {
			return fmt.Errorf("AppProject %s: %s %q: negated patterns are not supported by keyway: refused rather than ignored (ignoring one would allow what it denies)", p.Name, field, v)
		}
		return nil
	}
	for _, r := range p.Spec.SourceRepos {
		if err := negated("spec.sourceRepos", r); err != nil {
			return nil, err
		}
	}
	for _, d := range p.Spec.Destinations {
		for field, v := range map[string]string{"server": d.Server, "name": d.Name, "namespace": d.Namespace} {
			if err := negated("spec.destinations[]."+field, v); err != nil {
				return nil, err
			}
		}
	}
	return &p, nil
}

func decodeChecked(raw []byte, fields *Fields, into any) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("not a valid %s: %v", fields.Kind, err)
	}
	if err := fields.Check(m); err != nil {
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		return fmt.Errorf("%s %s: %w", fields.Kind, name, err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("not a valid %s: %v", fields.Kind, err)
	}
	return nil
}
