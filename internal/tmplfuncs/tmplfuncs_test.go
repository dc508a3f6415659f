package tmplfuncs

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hostile are templates that ran without bound before budgets: every one must stop with
// ErrBudget (or a plain refusal) quickly, whatever it tries.
var hostile = map[string]string{
	"nested ranges":                 `{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{range splitList "" (indent 3000 "")}}{{end}}{{end}}{{end}}{{end}}`,
	"nested ranges over a variable": `{{$l := splitList "" (indent 3000 "")}}{{range $l}}{{range $l}}{{range $l}}{{range $l}}{{end}}{{end}}{{end}}{{end}}`,
	"range over an int":             `{{range 1000000000000}}{{end}}`,
	"indent 1.5 GB":                 `{{indent 1500000000 ""}}`,
	"nindent":                       `{{nindent 1500000000 "a"}}`,
	"printf width":                  `{{printf "%01500000000d" 1}}`,
	"printf precision":              `{{printf "%.1500000000f" 1.0}}`,
	"printf star":                   `{{printf "%*d" 1500000000 1}}`,
	"doubling":                      `{{$s := "abcdefgh"}}{{range $i := splitList "" (indent 60 "")}}{{$s = printf "%s%s" $s $s}}{{end}}{{len $s}}`,
	"doubling with cat":             `{{$s := "abcdefgh"}}{{range $i := splitList "" (indent 60 "")}}{{$s = cat $s $s}}{{end}}{{len $s}}`,
	"replace empty":                 `{{$s := indent 4000 ""}}{{replace "" $s $s}}`,
	"regexReplaceAll":               `{{$s := indent 4000 ""}}{{regexReplaceAll "" $s $s}}`,
	"wrapWith":                      `{{$s := indent 100000 ""}}{{wrapWith 1 $s $s}}`,
	"join":                          `{{$s := indent 100000 ""}}{{join $s (splitList "" $s)}}`,
	"randAlpha":                     `{{randAlpha 1500000000}}`,
	"randBytes":                     `{{randBytes 1500000000}}`,
	"recursion":                     `{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}`,
	"recursion with no output":      `{{define "a"}}{{if true}}{{template "a" .}}{{end}}{{end}}{{template "a" .}}`,
	"self-containing dict":          `{{$d := dict}}{{$_ := set $d "self" $d}}{{$d}}`,
	"merge into itself":             `{{$d := dict "a" 1}}{{$e := dict "d" $d}}{{$_ := merge $d $e}}{{$d}}`,
	"list of lists":                 `{{$a := splitList "" (indent 2000 "")}}{{$b := list}}{{range $a}}{{$b = append $b $a}}{{end}}{{$c := list}}{{range $a}}{{$c = append $c $b}}{{end}}{{toJson $c}}`,
	"pretty json depth":             `{{$j := printf "%s%s" (indent 9000 "" | replace " " "[") (indent 9000 "" | replace " " "]")}}{{toPrettyJson (fromJson $j)}}`,
	"uniq quadratic":                `{{uniq (splitList "" (indent 200000 ""))}}`,
	"chunk zero":                    `{{chunk 0 (list 1 2)}}`,
	"output":                        `{{range splitList "" (indent 90000 "")}}{{indent 100 ""}}{{end}}`,
	"call":                          `{{call .f}}`,
	"bcrypt loop":                   `{{range splitList "" (indent 1000 "")}}{{bcrypt "x"}}{{end}}`,
}

func TestHostileTemplatesStop(t *testing.T) {
	for name, text := range hostile {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			b := NewBudget(t.Context(), DefaultLimits())
			out, err := run(b, text, map[string]any{"f": func() string { return "x" }})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("ran to the end (%d bytes of output)", len(out))
			}
			if took > 3*time.Second {
				t.Errorf("stopped after %s", took)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
				// Parallel subtests share the counter: this only catches the gigabytes.
				t.Errorf("allocated %d MiB", grew>>20)
			}
			t.Logf("%v (%s)", err, took.Round(time.Millisecond))
		})
	}
}

func run(b *Budget, text string, data any) (string, error) {
	tp, err := b.Parse("t", text, "")
	if err != nil {
		return "", err
	}
	return tp.Execute(data)
}

func TestBudgetErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       string
	}{
		{"steps", `{{range 1000000000000}}{{end}}`, "more than 100000 steps"},
		{"memory", `{{indent 1500000000 ""}}`, "would build more than 16 MiB"},
		{"output", `{{range splitList "" (indent 90000 "")}}{{indent 100 ""}}{{end}}`, "writes more than 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := DefaultLimits()
			l.Time = time.Hour // the bound under test comes first, however slow the machine
			_, err := run(NewBudget(t.Context(), l), c.text, nil)
			if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBudget saying %q", err, c.want)
			}
		})
	}
}

func TestCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	l := DefaultLimits()
	l.Steps, l.Time = 1<<62, time.Hour
	b := NewBudget(ctx, l)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := run(b, `{{range 1000000000000}}{{end}}`, nil)
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("cancel took %s", time.Since(start))
	}
}

func TestTimeLimit(t *testing.T) {
	l := DefaultLimits()
	l.Steps, l.Time = 1<<62, 100*time.Millisecond
	_, err := run(NewBudget(t.Context(), l), `{{range 1000000000000}}{{end}}`, nil)
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "longer than 100ms") {
		t.Fatalf("got %v", err)
	}
}

// Real templates, from the peers' documentation and tests, keep their meaning.
func TestTemplatesKeepTheirMeaning(t *testing.T) {
	data := map[string]any{"password": "s3cr3t", "user": "admin", "json": `{"a":{"b":[1,2]}}`, "lines": "a\nb"}
	cases := []struct{ name, text, want string }{
		{"index", `{{ index . "password" }}`, "s3cr3t"},
		{"field", `{{ .user }}:{{ .password }}`, "admin:s3cr3t"},
		{"b64", `{{ .password | b64enc }}`, "czNjcjN0"},
		{"printf", `{{ printf "%s-%05d" .user 42 }}`, "admin-00042"},
		{"range", `{{ range $k, $v := . }}{{ if eq $k "user" }}{{ $v | upper }}{{ end }}{{ end }}`, "ADMIN"},
		{"json", `{{ (.json | fromJson).a.b | toJson }}`, "[1,2]"},
		{"pretty", `{{ dict "a" 1 | toPrettyJson }}`, "{\n  \"a\": 1\n}"},
		{"indent", `{{ .lines | indent 2 }}`, "  a\n  b"},
		{"nindent", `{{ .lines | nindent 2 }}`, "\n  a\n  b"},
		{"dict set", `{{ $d := dict "a" "1" }}{{ $_ := set $d "b" "2" }}{{ keys $d | sortAlpha | join "," }}`, "a,b"},
		{"merge", `{{ $d := dict "a" "1" }}{{ $_ := merge $d (dict "b" "2") }}{{ len $d }}`, "2"},
		{"replace", `{{ replace "s" "$" .password }}`, "$3cr3t"},
		{"define", `{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" .user }}`, "[admin]"},
		{"range else", `{{ range list }}x{{ else }}empty{{ end }}`, "empty"},
		{"range int", `{{ range 3 }}{{ . }}{{ end }}`, "012"},
		{"html", `{{ html "<a>" }}`, "&lt;a&gt;"},
		{"regex", `{{ regexReplaceAll "[0-9]" .password "#" }}`, "s#cr#t"},
		{"split", `{{ (splitList "\n" .lines) | len }}`, "2"},
		{"uniq", `{{ list 1 1 2 | uniq | len }}`, "2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := run(NewBudget(t.Context(), DefaultLimits()), c.text, data)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDeniedFunctions(t *testing.T) {
	for _, name := range denied {
		_, err := NewBudget(t.Context(), DefaultLimits()).Parse("t", "{{"+name+"}}", "")
		if err == nil || !strings.Contains(err.Error(), "not defined") {
			t.Errorf("%s: got %v, want function not defined", name, err)
		}
	}
}

// BenchmarkWorstTemplate runs each hostile template on a fresh budget: figures per
// evaluation are the CPU time (ns/op) and memory (B/op) a hostile tenant can cost.
func BenchmarkWorstTemplate(b *testing.B) {
	for _, name := range []string{"nested ranges", "indent 1.5 GB", "doubling", "list of lists", "pretty json depth", "bcrypt loop", "output"} {
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.ReportAllocs()
			var peak uint64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if _, err := run(NewBudget(b.Context(), DefaultLimits()), hostile[name], nil); err == nil {
					b.Fatal("ran to the end")
				}
				runtime.ReadMemStats(&after)
				peak = max(peak, after.TotalAlloc-before.TotalAlloc)
			}
			b.ReportMetric(float64(peak)/(1<<20), "MiB-allocated/eval")
		})
	}
}

// BenchmarkTypicalTemplate is the cost a budget adds to an ordinary template: a new budget
// (its function map), a parse and an execution, as one SealedSecret or ExternalSecret
// entry takes.
func BenchmarkTypicalTemplate(b *testing.B) {
	data := map[string]any{"user": "admin", "password": "s3cr3t"}
	b.ReportAllocs()
	for b.Loop() {
		out, err := run(NewBudget(b.Context(), DefaultLimits()), `postgres://{{ .user }}:{{ .password | urlquery }}@db:5432/shop`, data)
		if err != nil || out == "" {
			b.Fatal(err)
		}
	}
}
