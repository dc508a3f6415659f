// Package redact is the one way a value, a peer's error or an API server's error becomes a
// message that may go into an error, a log line, an event, a status condition or a result:
// it keeps what explains the failure (a place, a field, a reason) and drops what could carry
// a secret (a quoted value, a request echoed back, a proxy's page).
package redact

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxUpstream is the most of a backend's own error text that goes into a message.
const MaxUpstream = 160

// Upstream makes a backend's error text fit for a message: control characters and runs of
// white space become one space, markup-looking text is dropped, and what is left is cut at
// MaxUpstream runes. A backend's explanation ("permission denied") survives; a proxy's HTML
// page or a body echoing the request does not.
func Upstream(msg string) string {
	msg = strings.Join(strings.FieldsFunc(msg, func(r rune) bool {
		return r == ' ' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd
	}), " ")
	if strings.ContainsAny(msg, "<>") && strings.Contains(msg, "</") {
		return "(a non-API response: markup omitted)"
	}
	if n := 0; len(msg) > MaxUpstream {
		for i := range msg {
			if n == MaxUpstream {
				return msg[:i] + "…"
			}
			n++
		}
	}
	return msg
}

// quotedValue is where an API server's message starts quoting a value: server-side apply's
// type errors ("expected string, got &value.valueUnstructured{Value:…}") and field
// validation ("Invalid value: …").
var quotedValue = regexp.MustCompile(`(?s)(got|Value:|value:|Invalid value:)\s.*`)

// APIError is an API server error for a message: an invalid object by its fields and the
// kind of each problem, never the values; other refusals with any quoted value left out,
// cut at 300 bytes, with the code and reason. Errors that are not API errors pass as they
// are.
func APIError(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return err.Error()
	}
	s := st.Status()
	if s.Reason == metav1.StatusReasonInvalid {
		return fmt.Sprintf("invalid (%s)", InvalidFields(err))
	}
	msg := s.Message
	if s.Reason == metav1.StatusReasonBadRequest {
		msg = quotedValue.ReplaceAllString(msg, "${1} (value left out)")
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return fmt.Sprintf("%s (%d %s)", msg, s.Code, s.Reason)
}

// InvalidFields names the fields an API server refused and why ("data[x]: FieldValueInvalid"),
// or says "invalid"; the values it quoted are left out.
func InvalidFields(err error) string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Details == nil {
		return "invalid"
	}
	var parts []string
	for _, c := range se.Status().Details.Causes {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Field, c.Type))
	}
	if len(parts) == 0 {
		return "invalid"
	}
	return strings.Join(parts, "; ")
}

// APIOutcome is an API error in one word, without the object it quotes: "not found",
// "forbidden" or "unreadable".
func APIOutcome(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "not found"
	case apierrors.IsForbidden(err):
		return "forbidden"
	}
	return "unreadable"
}

// TemplateError keeps the place of a Go template's execution error ("template: k:1:3:
// executing "k" at <mustFromJson .cfg>") and drops its cause: a failing function may quote
// its input.
func TemplateError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ">: "); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

// Values replaces every one of values found in msg, longest first, with "[redacted]": a
// second guard behind the functions above, never the first.
func Values(msg string, values []string) string {
	values = slices.Clone(values)
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}
