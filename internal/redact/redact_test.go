package redact

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"1 error occurred:\n\t* permission denied\n\n": "1 error occurred: * permission denied",
		"bad\x1b[2J\x00request":                        "bad [2J request",
		"<html><body>oops</body></html>":               "(a non-API response: markup omitted)",
		"a < b > c":                                    "a < b > c",
		strings.Repeat("é", 200):                       strings.Repeat("é", MaxUpstream) + "…",
	} {
		if got := Upstream(in); got != want {
			t.Errorf("Upstream(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Upstream(strings.Repeat("x", 10000)); utf8.RuneCountInString(got) != MaxUpstream+1 {
		t.Errorf("Reason of 10000 bytes has %d runes", utf8.RuneCountInString(got))
	}
}

func TestAPIErrorLeavesValuesOut(t *testing.T) {
	bad := apierrors.NewBadRequest(`failed to create typed patch object (/v1, Kind=ConfigMap) shop/cm: .data.k: expected string, got &value.valueUnstructured{Value:"s3cret-canary"}`)
	if got := APIError(bad); strings.Contains(got, "s3cret-canary") || !strings.Contains(got, ".data.k: expected string") {
		t.Fatalf("APIError = %q", got)
	}
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Secret"}, "db", field.ErrorList{field.Invalid(field.NewPath("data", "k"), "s3cret-canary", "not allowed")})
	if got := APIError(invalid); strings.Contains(got, "s3cret-canary") || got != "invalid (data.k: FieldValueInvalid)" {
		t.Fatalf("APIError = %q", got)
	}
	if got := APIOutcome(apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "s3cret-canary")); got != "not found" {
		t.Fatalf("APIOutcome = %q", got)
	}
}

func TestTemplateErrorAndValues(t *testing.T) {
	err := errors.New(`template: k:1:3: executing "k" at <mustFromJson .cfg>: invalid character 's' looking for beginning of value: s3cret`)
	if got := TemplateError(err); got != `template: k:1:3: executing "k" at <mustFromJson .cfg>` {
		t.Fatalf("TemplateError = %q", got)
	}
	if got := Values("a s3cret and s3cret-longer", []string{"s3cret", "s3cret-longer", ""}); got != "a [redacted] and [redacted]" {
		t.Fatalf("Values = %q", got)
	}
}
