// Package tmplfuncs runs the Go templates keyway takes from someone else's manifest
// (SealedSecret and ExternalSecret templates, ApplicationSet templates) on a budget that
// holds whatever the template does: time, steps, memory its functions allocate, and output.
// Its function map is Sprig's generic functions less those that would let the author learn
// about the host (env, expandenv, getHostByName), write a chosen string into an error that
// ends up in events and status (fail) or spend without a size to check (repeat, seq, until,
// the key and certificate generators, derivePassword).
package tmplfuncs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
)

// Limits is what one budget allows, over every template executed with it.
type Limits struct {
	// Time is the wall-clock time from the budget's creation; the context's deadline, when
	// sooner, wins.
	Time time.Duration
	// Steps counts function calls, range iterations and template invocations.
	Steps int64
	// Memory bounds, in bytes, what functions may build over the whole budget; a function
	// whose result could exceed what is left is refused before it runs.
	Memory int64
	// Output bounds the bytes the templates write.
	Output int64
}

// DefaultLimits are generous for any real template (a few hundred keys, a few functions
// each) and cut the worst one off in well under a second and 64 MiB.
func DefaultLimits() Limits {
	return Limits{Time: 500 * time.Millisecond, Steps: 100_000, Memory: 16 << 20, Output: 1 << 20}
}

// ErrBudget is the error (through errors.Is) of a template stopped by its budget.
var ErrBudget = errors.New("template over its budget")

type budgetError struct{ reason string }

func (e *budgetError) Error() string   { return ErrBudget.Error() + ": " + e.reason }
func (e *budgetError) Is(t error) bool { return t == ErrBudget }

// Budget is spent by every template parsed with it. It is not safe for concurrent use:
// one object's evaluation owns one budget.
type Budget struct {
	ctx      context.Context
	deadline time.Time
	limits   Limits
	steps    int64
	memory   int64
	output   int64
	err      error
}

// NewBudget starts a budget; its clock runs from now.
func NewBudget(ctx context.Context, l Limits) *Budget {
	b := &Budget{ctx: ctx, limits: l, deadline: time.Now().Add(l.Time)}
	if d, ok := ctx.Deadline(); ok && d.Before(b.deadline) {
		b.deadline = d
	}
	return b
}

// Err is the budget error that stopped a template, or nil.
func (b *Budget) Err() error { return b.err }

func (b *Budget) fail(format string, args ...any) error {
	if b.err == nil {
		b.err = &budgetError{fmt.Sprintf(format, args...)}
	}
	return b.err
}

// step spends one step and checks the clock and the context.
func (b *Budget) step() error {
	if b.err != nil {
		return b.err
	}
	b.steps++
	if b.steps > b.limits.Steps {
		return b.fail("more than %d steps (function calls, range iterations, template calls)", b.limits.Steps)
	}
	if err := b.ctx.Err(); err != nil {
		return b.fail("cancelled")
	}
	if time.Now().After(b.deadline) {
		return b.fail("ran longer than %s", b.limits.Time)
	}
	return nil
}

// spend charges n bytes of memory.
func (b *Budget) spend(n int64) error {
	if err := b.check(n); err != nil {
		return err
	}
	b.memory += n
	return nil
}

// check refuses a call whose result could be larger than what is left, before it runs.
func (b *Budget) check(estimate int64) error {
	if b.err != nil {
		return b.err
	}
	if estimate > b.limits.Memory-b.memory {
		return b.fail("its functions would build more than %s", bytesize(b.limits.Memory))
	}
	return nil
}

func (b *Budget) left() int64 { return b.limits.Memory - b.memory }

func bytesize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Template is a parsed template bound to its budget.
type Template struct {
	t *template.Template
	b *Budget
}

// Parse parses text as the template called name. missingKey is text/template's
// missingkey option ("" for the default, "zero", "error").
func (b *Budget) Parse(name, text, missingKey string) (*Template, error) {
	if err := b.step(); err != nil {
		return nil, err
	}
	t := template.New(name).Funcs(baseFuncs())
	if missingKey != "" {
		t = t.Option("missingkey=" + missingKey)
	}
	t, err := t.Parse(text)
	if err != nil {
		return nil, err
	}
	// Every loop a template can make goes through a range or a template call: each
	// iteration and each call begins with a step, so no loop runs off the budget.
	step := stepNode()
	used := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		instrument(tt.Tree.Root, step, used)
		tt.Tree.Root.Nodes = append([]parse.Node{step.Copy()}, tt.Tree.Root.Nodes...)
	}
	// The functions the template names, bound to this budget (associated templates share
	// the function map).
	t.Funcs(b.bound(used))
	return &Template{t: t, b: b}, nil
}

const stepFunc = "keywayTemplateStep"

// stepNode is the action {{keywayTemplateStep}}, copied into every range body and
// template; the function is looked up by name when the template runs, in its own map.
var stepNode = sync.OnceValue(func() parse.Node {
	t := template.Must(template.New("").Funcs(template.FuncMap{stepFunc: func() string { return "" }}).Parse("{{" + stepFunc + "}}"))
	return t.Tree.Root.Nodes[0]
})

func (b *Budget) stepAction() (string, error) { return "", b.step() }

// instrument walks a template's tree once: it collects the function names the template
// calls into used and puts a step at the start of every range body.
func instrument(n parse.Node, step parse.Node, used map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			instrument(c, step, used)
		}
	case *parse.ActionNode:
		instrument(n.Pipe, step, used)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			instrument(c, step, used)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			instrument(a, step, used)
		}
	case *parse.ChainNode:
		instrument(n.Node, step, used)
	case *parse.IdentifierNode:
		used[n.Ident] = true
	case *parse.TemplateNode:
		instrument(n.Pipe, step, used)
	case *parse.RangeNode:
		instrument(n.Pipe, step, used)
		instrument(n.List, step, used)
		instrument(n.ElseList, step, used)
		if n.List != nil {
			n.List.Nodes = append([]parse.Node{step.Copy()}, n.List.Nodes...)
		}
	case *parse.IfNode:
		instrument(n.Pipe, step, used)
		instrument(n.List, step, used)
		instrument(n.ElseList, step, used)
	case *parse.WithNode:
		instrument(n.Pipe, step, used)
		instrument(n.List, step, used)
		instrument(n.ElseList, step, used)
	}
}

// Execute runs the template over data and returns what it wrote. A budget error is
// returned as itself (errors.Is ErrBudget), without text/template's wrapping.
func (t *Template) Execute(data any) (string, error) {
	var out strings.Builder
	err := t.t.Execute(&budgetWriter{b: t.b, w: &out}, data)
	if t.b.err != nil {
		return "", t.b.err
	}
	if err != nil {
		return "", err
	}
	return out.String(), nil
}

type budgetWriter struct {
	b *Budget
	w io.Writer
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	b := w.b
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.limits.Output-b.output {
		return 0, b.fail("writes more than %s", bytesize(b.limits.Output))
	}
	if time.Now().After(b.deadline) {
		return 0, b.fail("ran longer than %s", b.limits.Time)
	}
	b.output += int64(len(p))
	return w.w.Write(p)
}
