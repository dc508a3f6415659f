package sealing

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	"github.com/keyway-dev/keyway/internal/tmplfuncs"
)

// maxTemplateOutput bounds what a SealedSecret's spec.template.data may render in total:
// the most a Secret can hold.
const maxTemplateOutput = 1 << 20

// templateFuncs are Sprig's generic functions, as upstream Sealed Secrets offers them, less
// those that reach the host or run without bound (internal/tmplfuncs).
var templateFuncs = tmplfuncs.Safe()

// renderTemplateData applies spec.template.data to the unsealed values, with upstream's
// meaning: each entry is a Go text/template executed over the unsealed values (a map from
// key to string: `{{ index . "password" }}`), and an entry that is null removes the key.
// Entries are rendered in key order over the unsealed values only, never over each other's
// output. Errors name the entry and never carry an unsealed value.
func renderTemplateData(tmpl map[string]*string, data map[string][]byte) error {
	if len(tmpl) == 0 {
		return nil
	}
	values := make(map[string]string, len(data))
	for k, v := range data {
		values[k] = string(v)
	}
	out := &boundedBuffer{left: maxTemplateOutput}
	for _, k := range slices.Sorted(maps.Keys(tmpl)) {
		text := tmpl[k]
		if text == nil {
			delete(data, k)
			continue
		}
		t, err := template.New(k).Funcs(templateFuncs).Option("missingkey=zero").Parse(*text)
		if err != nil {
			// The template is plain text from the manifest, not a secret.
			return fmt.Errorf("template.data %q: %w", k, err)
		}
		start := len(out.buf)
		if err := t.Execute(out, values); err != nil {
			if errors.Is(err, errTemplateTooLarge) {
				return fmt.Errorf("template.data: %w", err)
			}
			return fmt.Errorf("template.data %q cannot be rendered: %s", k, redact(where(err), values))
		}
		data[k] = slices.Clone(out.buf[start:])
	}
	return nil
}

var errTemplateTooLarge = fmt.Errorf("renders more than %d bytes", maxTemplateOutput)

type boundedBuffer struct {
	buf  []byte
	left int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if len(p) > b.left {
		return 0, errTemplateTooLarge
	}
	b.left -= len(p)
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// where keeps the place of a template execution error ("template: k:1:3: executing "k" at
// <mustFromJson .cfg>") and drops the cause: a failing function may quote its input.
func where(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ">: "); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

// redact removes every unsealed value from msg, as a second guard behind where.
func redact(msg string, values map[string]string) string {
	for _, v := range slices.SortedFunc(maps.Values(values), func(a, b string) int { return len(b) - len(a) }) {
		if len(v) > 0 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}
