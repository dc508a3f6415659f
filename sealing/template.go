package sealing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/internal/tmplfuncs"
)

// maxTemplateOutput bounds what a SealedSecret's spec.template.data may render in total:
// the most a Secret can hold.
const maxTemplateOutput = 1 << 20

// renderTemplateData applies spec.template.data to the unsealed values, with upstream's
// meaning: each entry is a Go text/template executed over the unsealed values (a map from
// key to string: `{{ index . "password" }}`), and an entry that is null removes the key.
// Entries are rendered in key order over the unsealed values only, never over each other's
// output, all on one budget (internal/tmplfuncs) that ctx also ends. Errors name the entry
// and never carry an unsealed value.
func renderTemplateData(ctx context.Context, tmpl map[string]*string, data map[string][]byte) error {
	if len(tmpl) == 0 {
		return nil
	}
	values := make(map[string]string, len(data))
	for k, v := range data {
		values[k] = string(v)
	}
	limits := tmplfuncs.DefaultLimits()
	limits.Output = maxTemplateOutput
	budget := tmplfuncs.NewBudget(ctx, limits)
	for _, k := range slices.Sorted(maps.Keys(tmpl)) {
		text := tmpl[k]
		if text == nil {
			delete(data, k)
			continue
		}
		t, err := budget.Parse(k, *text, "zero")
		if err != nil {
			// The template is plain text from the manifest, not a secret.
			return fmt.Errorf("template.data %q: %w", k, err)
		}
		out, err := t.Execute(values)
		if errors.Is(err, tmplfuncs.ErrBudget) {
			return fmt.Errorf("template.data %q: %w", k, err)
		}
		if err != nil {
			return fmt.Errorf("template.data %q cannot be rendered: %s", k, redact.Values(redact.TemplateError(err), slices.Collect(maps.Values(values))))
		}
		data[k] = []byte(out)
	}
	return nil
}
