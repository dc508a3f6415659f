package manifest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReadErrors(t *testing.T) {
	laughs := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		laughs += n + ": &" + n + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
		prev = n
	}
	tests := []struct {
		name   string
		input  string
		limits Limits
		want   string
	}{
		{"billion laughs", laughs, Limits{}, "in.yaml:1: document 0: document expands to more than 1000000 nodes"},
		{"too deep", strings.Repeat("[", 300) + strings.Repeat("]", 300), Limits{}, "nesting is deeper than 256 levels"},
		{"document too large", "a: 1\n---\nb: " + strings.Repeat("x", 200) + "\n", Limits{MaxDocumentBytes: 100}, "in.yaml:3: document 1: document is larger than 100 bytes"},
		{"stream too large", strings.Repeat("x", 200), Limits{MaxStreamBytes: 100}, "input is larger than 100 bytes"},
		{"malformed names the stream line", "a: 1\n---\nkind: x\nmetadata:\n  name: a\n   bad: 1\n", Limits{}, "in.yaml:6: document 1: mapping values are not allowed in this context"},
		{"tab indentation", "a:\n\tb: 1\n", Limits{}, "in.yaml:2: document 0:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Read(strings.NewReader(tt.input), "in.yaml", tt.limits)
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("err = %v, want *manifest.Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %s; bounded input must fail fast", d)
			}
		})
	}
}

func TestRoundTripVerbatim(t *testing.T) {
	in := "# head comment\na: 1\nlist:\n- x\n-   y\n---\n--- # second is empty\n...\nz: 'q'\n"
	docs, err := Read(strings.NewReader(in), "s", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// "---" opens document 1 (empty), "--- # …" document 2 (empty, ended by "..."), then 3.
	if len(docs) != 2 || docs[0].Index != 0 || docs[1].Index != 3 {
		t.Fatalf("docs = %d (indexes %v), want 2 at 0 and 3", len(docs), indexes(docs))
	}
	var out bytes.Buffer
	if err := Encode(&out, docs, YAML); err != nil {
		t.Fatal(err)
	}
	want := "# head comment\na: 1\nlist:\n- x\n-   y\n---\nz: 'q'\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestEncodeJSON(t *testing.T) {
	in := "b: 1\na: &x {k: [true, null, 1.5, \"s\"]}\nbig: 123456789012345678901234567890\nm:\n  <<: *x\n  own: 2\n---\nkind: Second\n"
	docs, err := Read(strings.NewReader(in), "s", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Encode(&out, docs[:1], JSON); err != nil {
		t.Fatal(err)
	}
	want := `{
  "b": 1,
  "a": {
    "k": [
      true,
      null,
      1.5,
      "s"
    ]
  },
  "big": 123456789012345678901234567890,
  "m": {
    "k": [
      true,
      null,
      1.5,
      "s"
    ],
    "own": 2
  }
}
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := Encode(&out, docs, JSON); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [") {
		t.Fatalf("two documents should encode as a v1 List, got\n%s", out.String())
	}
}

func indexes(docs []*Document) []int {
	var out []int
	for _, d := range docs {
		out = append(out, d.Index)
	}
	return out
}

// TestManyEmptyDocuments: empty documents count, so a small input of many of them is
// refused before it is parsed (900,000 of them took a sidecar to 1.48 GB).
func TestManyEmptyDocuments(t *testing.T) {
	for name, in := range map[string]string{
		"markers":   strings.Repeat("---\n\n", 900_000),
		"ends":      strings.Repeat("...\n", 20_000),
		"documents": strings.Repeat("---\na: 1\n", 20_000),
	} {
		_, err := Read(strings.NewReader(in), name, Limits{})
		if err == nil || !strings.Contains(err.Error(), "more than 10000 documents") {
			t.Errorf("Read %s: %v", name, err)
		}
		s := NewStream(strings.NewReader(in), name, Limits{})
		for err == nil || !strings.Contains(err.Error(), "documents") {
			if _, err = s.Next(); err == io.EOF {
				t.Errorf("Stream %s: read to the end", name)
				break
			}
		}
	}
	if docs, err := Read(strings.NewReader(strings.Repeat("---\na: 1\n", 9_000)), "ok", Limits{}); err != nil || len(docs) != 9_000 {
		t.Fatalf("9,000 documents: %d, %v", len(docs), err)
	}
}
