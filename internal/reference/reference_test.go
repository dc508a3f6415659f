package reference

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
)

type grammarCase struct {
	line    int
	input   string
	generic bool
	expect  string
}

func loadGrammar(t testing.TB) []grammarCase {
	t.Helper()
	f, err := os.Open("testdata/grammar.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []grammarCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			t.Fatalf("grammar.txt:%d: want 3 tab-separated fields", n)
		}
		cases = append(cases, grammarCase{line: n, input: fields[0], generic: fields[1] == "1", expect: fields[2]})
	}
	return cases
}

func describe(t Template) string {
	var parts []string
	for _, p := range t.Parts {
		if p.Placeholder == nil {
			parts = append(parts, fmt.Sprintf("L%q", p.Literal))
			continue
		}
		ph := p.Placeholder
		var b strings.Builder
		b.WriteString("P{")
		b.WriteString(map[Kind]string{Path: "path", Generic: "generic", URI: "uri"}[ph.Kind])
		for _, kv := range [][2]string{{"backend", ph.Backend}, {"path", ph.Path}, {"key", ph.Key}, {"pointer", ph.Pointer}, {"version", ph.Version}, {"params", ph.Params}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
			}
		}
		if len(ph.Modifiers) > 0 {
			var names []string
			for _, m := range ph.Modifiers {
				names = append(names, m.Name)
			}
			b.WriteString(" mods=" + strings.Join(names, ","))
		}
		b.WriteString("}")
		parts = append(parts, b.String())
	}
	return strings.Join(parts, " ")
}

func TestGrammar(t *testing.T) {
	for _, c := range loadGrammar(t) {
		t.Run(fmt.Sprintf("line%d", c.line), func(t *testing.T) {
			t.Parallel()
			tmpl, err := Parse(c.input, Options{Generic: c.generic})
			if want, ok := strings.CutPrefix(c.expect, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Parse(%q) err = %v, want %q", c.input, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.input, err)
			}
			if got := describe(tmpl); got != c.expect {
				t.Fatalf("Parse(%q)\n got %s\nwant %s", c.input, got, c.expect)
			}
		})
	}
}

func TestModifiers(t *testing.T) {
	tests := []struct {
		name, ref string
		in        any
		want      any
		wantErr   string
	}{
		{"base64encode", "<path:a#b | base64encode>", "hi", "aGk=", ""},
		{"base64decode invalid is an error", "<path:a#b | base64decode>", "%%%", nil, "base64decode: value is not valid standard base64"},
		{"base64encode of a number", "<path:a#b | base64encode>", 5, nil, "value is a number, want a string"},
		{"jsonParse then jsonPath", "<path:a#b | jsonParse | jsonPath {.x}>", `{"x":"y"}`, "y", ""},
		{"jsonParse keeps integers", "<path:a#b | jsonParse>", `{"n":7}`, map[string]any{"n": int64(7)}, ""},
		{"jsonParse rejects trailing data", "<path:a#b | jsonParse>", `{} {}`, nil, "not valid JSON"},
		{"jsonPath on an object", "<path:a#b | jsonPath {.a.b}>", map[string]any{"a": map[string]any{"b": "c"}}, "c", ""},
		{"jsonPath no match", "<path:a#b | jsonPath {.zz}>", map[string]any{"a": 1}, nil, "template {.zz} does not match"},
		{"yamlParse", "<path:a#b | yamlParse>", "k: v", map[string]any{"k": "v"}, ""},
		{"indent", "<path:a#b | indent 2>", "a\n  b\nc\n", "a\n  b\n  c", ""},
		{"sha256sum", "<path:a#b | sha256sum>", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse(tt.ref, Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := tmpl.Single()
			got, err := p.Apply(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestSelectPointer(t *testing.T) {
	data := map[string]any{"db": map[string]any{"hosts": []any{"a", "b"}, "a/b": "slash"}, "k": "v"}
	tests := []struct {
		ptr, want, wantErr string
	}{
		{"/k", "v", ""},
		{"/db/hosts/1", "b", ""},
		{"/db/a~1b", "slash", ""},
		{"/db/hosts/9", "", `no list index at "/db/hosts/9"`},
		{"/k/deeper", "", `"/k" is not an object or list`},
		{"/nope", "", `nothing at "/nope"`},
	}
	for _, tt := range tests {
		p := &Placeholder{Kind: URI, Pointer: tt.ptr}
		got, err := p.Select(data, nil)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.ptr, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v; want %q", tt.ptr, got, err, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics, that literal parts reassemble the text around
// placeholders, and that every placeholder's Raw text occurs in the input.
func FuzzParse(f *testing.F) {
	for _, c := range loadGrammar(f) {
		f.Add(c.input, c.generic)
	}
	f.Fuzz(func(t *testing.T, s string, generic bool) {
		tmpl, err := Parse(s, Options{Generic: generic})
		if err != nil {
			return
		}
		pos := 0
		for _, p := range tmpl.Parts {
			if p.Placeholder == nil {
				i := strings.Index(s[pos:], p.Literal)
				if i != 0 {
					t.Fatalf("literal %q not at offset %d of %q", p.Literal, pos, s)
				}
				pos += len(p.Literal)
				continue
			}
			i := strings.Index(s[pos:], p.Placeholder.Raw)
			if i != 0 {
				t.Fatalf("placeholder %q not at offset %d of %q", p.Placeholder.Raw, pos, s)
			}
			pos += len(p.Placeholder.Raw)
			if pos < len(s) && s[pos] == '+' && p.Placeholder.Kind == URI {
				pos++
			}
		}
		if pos != len(s) {
			t.Fatalf("parts cover %d of %d bytes of %q", pos, len(s), s)
		}
	})
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"secret/data/app", true},
		{"/prod/db/password", true},
		{"projects/p/secrets/s/versions/3", true},
		{"arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-AbC", true},
		{"", false},
		{"secret/data/team-a/../team-b/db", false},
		{"secret/./data/app", false},
		{"..", false},
		{"secret//app", false},
		{"//secret/app", false},
		{"secret/app/", false},
		{"secret/%2e%2e/app", false},
		{"secret%2Fapp", false},
		{`secret\..\app`, false},
		{"secret/a\x00b", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if err := CheckPath(tc.path); (err == nil) != tc.ok {
				t.Fatalf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
			}
		})
	}
}

// TestNonCanonicalRefused: every written form that names a secret path refuses a path a
// backend would clean, with the placeholder named; a file reference is a file path and is
// confined by the file system instead.
func TestNonCanonicalRefused(t *testing.T) {
	for _, s := range []string{
		"<path:secret/data/team-a/../team-b/db#pw>",
		"<path:secret/data/team-a/../team-b/db#pw#3>",
		"<path://secret/data/team-b#pw>",
		"ref+vault://secret/data/team-a/../team-b/db#/pw",
		"ref+vault:///secret/data/team-a/./db#/pw",
		"ref+awssm://prod/team-a/%2e%2e/team-b#/pw",
		"ref+gcpsm://projects/p/secrets/s/..#/pw",
		"ref+awsssm:///prod//db",
	} {
		_, err := Parse(s, Options{})
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "secret path") || se.Raw == "" {
			t.Errorf("Parse(%q) = %v, want a secret path syntax error", s, err)
		}
	}
	if _, err := Parse("ref+file://../shared.yaml#/x", Options{}); err != nil {
		t.Errorf("file reference with '..' refused by the grammar: %v", err)
	}
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"secret/data/app", "a/../b", "/p/q", "a//b", "a/%2e%2e/b", "./a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		// A canonical path is its own clean form: nothing a backend cleans can change it.
		trimmed := strings.TrimPrefix(p, "/")
		if path.Clean("/"+trimmed) != "/"+trimmed {
			t.Fatalf("CheckPath accepted %q, which cleans to %q", p, path.Clean("/"+trimmed))
		}
		if u, err := url.PathUnescape(p); err != nil || u != p {
			t.Fatalf("CheckPath accepted %q, which unescapes to %q", p, u)
		}
		if strings.ContainsAny(p, "\\") {
			t.Fatalf("CheckPath accepted a backslash in %q", p)
		}
	})
}
