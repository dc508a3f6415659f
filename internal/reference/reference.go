package reference

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"k8s.io/client-go/util/jsonpath"
)

// Kind says which form a placeholder was written in.
type Kind int

const (
	// Path is <path:PATH#KEY[#VERSION]>.
	Path Kind = iota + 1
	// Generic is <KEY>, resolved against a path given elsewhere (an annotation).
	Generic
	// URI is ref+BACKEND://PATH[?PARAMS][#/POINTER].
	URI
)

// Placeholder is one parsed reference.
type Placeholder struct {
	Kind Kind
	// Raw is the placeholder exactly as written, for error messages. It never holds a value.
	Raw string
	// Backend is set for URI references; Path and Generic use the configured default backend.
	Backend string
	// Path is the secret's path (empty for Generic).
	Path string
	// Key is the top-level key of a Path or Generic placeholder.
	Key string
	// Pointer is the JSON pointer of a URI reference ("" selects the whole secret).
	Pointer string
	// Version is the requested version ("" for the current one).
	Version string
	// Params holds a URI's query parameters other than version, canonically encoded.
	Params string
	// Modifiers are applied to the value left to right.
	Modifiers []Modifier
}

// Modifier is one "| name args" stage of a pipeline.
type Modifier struct {
	Name string
	Args []string
	// Indent is the parsed argument of indent.
	Indent int
	// JSONPath is the parsed template of jsonPath.
	JSONPath *jsonpath.JSONPath
	// Expr is jsonPath's template text, for messages.
	Expr string
}

// Part is a run of literal text or one placeholder.
type Part struct {
	Literal     string
	Placeholder *Placeholder
}

// Template is a parsed string value: literal runs and placeholders in order.
type Template struct {
	Parts []Part
}

// HasPlaceholders reports whether any part is a placeholder.
func (t Template) HasPlaceholders() bool {
	for _, p := range t.Parts {
		if p.Placeholder != nil {
			return true
		}
	}
	return false
}

// Single returns the placeholder when the whole string is exactly one placeholder.
func (t Template) Single() (*Placeholder, bool) {
	if len(t.Parts) == 1 && t.Parts[0].Placeholder != nil {
		return t.Parts[0].Placeholder, true
	}
	return nil, false
}

// Options choose which forms Parse recognises.
type Options struct {
	// Generic enables <KEY> placeholders (documents annotated avp.kubernetes.io/path).
	Generic bool
}

// SyntaxError reports a malformed placeholder. It quotes the placeholder text, which is
// manifest text, never a secret value.
type SyntaxError struct {
	Raw    string
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed reference %q: %s", Abbrev(e.Raw), e.Reason)
}

// Parse splits s into literal text and placeholders. Text that only looks like a placeholder
// (<br>, a < b > c) is literal; a placeholder that starts as one (<path:…, ref+x://…) but is
// malformed is a *SyntaxError.
func Parse(s string, opts Options) (Template, error) {
	var t Template
	lit := 0 // start of the pending literal run
	flush := func(end int) {
		if end > lit {
			t.Parts = append(t.Parts, Part{Literal: s[lit:end]})
		}
	}
	for i := 0; i < len(s); {
		switch {
		case s[i] == '<':
			p, n, err := parseAngle(s[i:], opts)
			if err != nil {
				return Template{}, err
			}
			if p == nil {
				i++
				continue
			}
			flush(i)
			t.Parts = append(t.Parts, Part{Placeholder: p})
			i += n
			lit = i
		case s[i] == 'r' && strings.HasPrefix(s[i:], "ref+") && (i == 0 || !isWordByte(s[i-1])):
			p, n, err := parseURI(s[i:])
			if err != nil {
				return Template{}, err
			}
			if p == nil {
				i++
				continue
			}
			flush(i)
			t.Parts = append(t.Parts, Part{Placeholder: p})
			i += n
			lit = i
		default:
			i++
		}
	}
	flush(len(s))
	return t, nil
}

// hint matches what marks a file as using secret references: an angle placeholder, a URI
// reference or the annotation that turns on generic placeholders.
var hint = regexp.MustCompile(`<path:|ref\+[a-z0-9]+://|avp\.kubernetes\.io/path`)

// Mentions reports whether a file's content uses secret references, for discovery (is this
// application one for keyway?); the render parses them properly.
func Mentions(data []byte) bool { return hint.Match(data) }

// Contains reports cheaply whether s may hold a placeholder; Parse gives the answer.
func Contains(s string) bool {
	return strings.IndexByte(s, '<') >= 0 || strings.Contains(s, "ref+")
}

// parseAngle parses a placeholder at the start of s ("<…>"). It returns nil when the text is
// not a placeholder, and n, the bytes consumed.
func parseAngle(s string, opts Options) (*Placeholder, int, error) {
	if strings.HasPrefix(s, "<path:") {
		end := closing(s)
		if end < 0 {
			return nil, 0, &SyntaxError{Raw: clip(s), Reason: "no closing '>'"}
		}
		raw := s[:end+1]
		p, err := parsePathBody(raw, s[len("<path:"):end])
		return p, end + 1, err
	}
	if !opts.Generic {
		return nil, 0, nil
	}
	// <KEY> or <KEY | modifiers>: the key starts right after '<' so "a < b > c" stays text.
	k := 1
	for k < len(s) && isKeyByte(s[k]) {
		k++
	}
	if k == 1 || k >= len(s) {
		return nil, 0, nil
	}
	rest := s[k:]
	switch {
	case rest[0] == '>':
		return &Placeholder{Kind: Generic, Raw: s[:k+1], Key: s[1:k]}, k + 1, nil
	case strings.HasPrefix(strings.TrimLeft(rest, " "), "|"):
		end := closing(s)
		if end < 0 {
			return nil, 0, nil
		}
		raw := s[:end+1]
		mods, err := parseModifiers(raw, strings.Split(s[k:end], "|")[1:])
		if err != nil {
			return nil, 0, err
		}
		return &Placeholder{Kind: Generic, Raw: raw, Key: s[1:k], Modifiers: mods}, end + 1, nil
	}
	return nil, 0, nil
}

// closing finds the '>' that ends the placeholder at s[0], skipping '>' inside {…}
// (jsonPath templates), or -1.
func closing(s string) int {
	depth := 0
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth > 0 {
				depth--
			}
		case '>':
			if depth == 0 {
				return i
			}
		case '<', '\n':
			if depth == 0 {
				return -1
			}
		}
	}
	return -1
}

func parsePathBody(raw, body string) (*Placeholder, error) {
	stages := strings.Split(body, "|")
	head := strings.TrimSpace(stages[0])
	fields := strings.Split(head, "#")
	p := &Placeholder{Kind: Path, Raw: raw}
	switch len(fields) {
	case 3:
		p.Version = strings.TrimSpace(fields[2])
		if p.Version == "" {
			return nil, &SyntaxError{Raw: raw, Reason: "empty version after the second '#'"}
		}
		fallthrough
	case 2:
		p.Path = strings.TrimSpace(fields[0])
		p.Key = strings.TrimSpace(fields[1])
	case 1:
		return nil, &SyntaxError{Raw: raw, Reason: "missing '#KEY' after the path"}
	default:
		return nil, &SyntaxError{Raw: raw, Reason: "too many '#': want PATH#KEY or PATH#KEY#VERSION"}
	}
	if p.Path == "" {
		return nil, &SyntaxError{Raw: raw, Reason: "empty path"}
	}
	if p.Key == "" {
		return nil, &SyntaxError{Raw: raw, Reason: "empty key"}
	}
	if err := CheckPath(p.Path); err != nil {
		return nil, &SyntaxError{Raw: raw, Reason: "secret path: " + err.Error()}
	}
	mods, err := parseModifiers(raw, stages[1:])
	if err != nil {
		return nil, err
	}
	p.Modifiers = mods
	return p, nil
}

func parseModifiers(raw string, stages []string) ([]Modifier, error) {
	var mods []Modifier
	for _, st := range stages {
		st = strings.TrimSpace(st)
		if st == "" {
			return nil, &SyntaxError{Raw: raw, Reason: "empty modifier after '|'"}
		}
		name, arg, _ := strings.Cut(st, " ")
		arg = strings.TrimSpace(arg)
		m := Modifier{Name: name}
		if arg != "" {
			m.Args = strings.Fields(arg)
		}
		switch name {
		case "base64encode", "base64decode", "jsonParse", "yamlParse", "sha256sum":
			if len(m.Args) > 0 {
				return nil, &SyntaxError{Raw: raw, Reason: fmt.Sprintf("modifier %s takes no arguments", name)}
			}
		case "indent":
			if len(m.Args) != 1 {
				return nil, &SyntaxError{Raw: raw, Reason: "modifier indent takes one argument, the number of spaces"}
			}
			n, err := strconv.Atoi(m.Args[0])
			if err != nil || n < 0 || n > 1024 {
				return nil, &SyntaxError{Raw: raw, Reason: fmt.Sprintf("modifier indent: %q is not a number of spaces from 0 to 1024", Abbrev(m.Args[0]))}
			}
			m.Indent = n
		case "jsonPath":
			if arg == "" {
				return nil, &SyntaxError{Raw: raw, Reason: "modifier jsonPath needs a template such as {.key}"}
			}
			jp := jsonpath.New("keyway")
			jp.AllowMissingKeys(false)
			if err := jp.Parse(arg); err != nil {
				return nil, &SyntaxError{Raw: raw, Reason: fmt.Sprintf("modifier jsonPath: %v", err)}
			}
			m.JSONPath, m.Expr = jp, arg
		default:
			return nil, &SyntaxError{Raw: raw, Reason: fmt.Sprintf("unknown modifier %q (known: base64encode, base64decode, jsonPath, jsonParse, yamlParse, indent, sha256sum)", Abbrev(name))}
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// parseURI parses ref+BACKEND://BODY at the start of s. BODY ends at white space, a quote,
// '<', '>' or a '+' (which is consumed).
func parseURI(s string) (*Placeholder, int, error) {
	rest := s[len("ref+"):]
	b := 0
	for b < len(rest) && (rest[b] >= 'a' && rest[b] <= 'z' || rest[b] >= '0' && rest[b] <= '9') {
		b++
	}
	if b == 0 || !strings.HasPrefix(rest[b:], "://") {
		return nil, 0, nil
	}
	backend := rest[:b]
	start := len("ref+") + b + len("://")
	end := start
	for end < len(s) && !isURIEnd(s[end]) {
		end++
	}
	raw := s[:end]
	n := end
	if end < len(s) && s[end] == '+' {
		n++
	}
	body := s[start:end]
	p := &Placeholder{Kind: URI, Raw: raw, Backend: backend}
	body, frag, hasFrag := strings.Cut(body, "#")
	if hasFrag {
		if frag != "" && !strings.HasPrefix(frag, "/") {
			return nil, 0, &SyntaxError{Raw: raw, Reason: "the part after '#' must be a JSON pointer starting with '/', such as #/password"}
		}
		ptr, err := url.PathUnescape(frag)
		if err != nil {
			return nil, 0, &SyntaxError{Raw: raw, Reason: "bad escape in the JSON pointer"}
		}
		p.Pointer = ptr
	}
	path, query, _ := strings.Cut(body, "?")
	if path == "" {
		return nil, 0, &SyntaxError{Raw: raw, Reason: "empty path after '://'"}
	}
	// A file reference is a file path, confined by the file system to the render root
	// (where ../shared.yaml is legitimate); every other backend's path is a secret path.
	if backend != "file" {
		if err := CheckPath(path); err != nil {
			return nil, 0, &SyntaxError{Raw: raw, Reason: "secret path: " + err.Error()}
		}
	}
	p.Path = path
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, 0, &SyntaxError{Raw: raw, Reason: "malformed query after '?'"}
		}
		p.Version = q.Get("version")
		q.Del("version")
		p.Params = q.Encode()
	}
	return p, n, nil
}

func isURIEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '<', '>', '+', '`':
		return true
	}
	return false
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/'
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// clip shortens an unterminated placeholder for an error message.
func clip(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// maxQuoted bounds how much of a placeholder (or any manifest text) an error quotes.
const maxQuoted = 256

// Abbrev shortens manifest text for an error message: at most maxQuoted bytes, cut on a
// rune boundary, followed by how long the whole was. A 6 MB placeholder makes a short error.
func Abbrev(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}
