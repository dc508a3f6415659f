package manifest

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// streamAll reads every document through a Stream.
func streamAll(input string, limits Limits) ([]*Document, error) {
	s := NewStream(strings.NewReader(input), "in.yaml", limits)
	var docs []*Document
	for {
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
}

// sameAsRead checks that Stream gives what Read gives: documents, indexes, text and errors.
func sameAsRead(t *testing.T, input string, limits Limits) {
	t.Helper()
	want, werr := Read(strings.NewReader(input), "in.yaml", limits)
	got, gerr := streamAll(input, limits)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("input %q: Read err %v, Stream err %v", input, werr, gerr)
	}
	if len(got) != len(want) {
		t.Fatalf("input %q: Read %d documents, Stream %d", input, len(want), len(got))
	}
	for i := range want {
		w, _ := EncodeYAML(want[i])
		g, _ := EncodeYAML(got[i])
		if want[i].Index != got[i].Index || string(w) != string(g) || string(want[i].raw) != string(got[i].raw) {
			t.Fatalf("input %q document %d: Read (index %d) %q, Stream (index %d) %q", input, i, want[i].Index, w, got[i].Index, g)
		}
	}
}

func TestStreamMatchesRead(t *testing.T) {
	for _, in := range []string{
		"", "a: 1\n", "a: 1", "---\na: 1\n", "a: 1\n---\nb: 2\n", "---\n---\na: 1\n---\n", "a: 1\n...\n---\nb: 2\n",
		"# only a comment\n---\nb: 2\n", "%YAML 1.2\n---\na: 1\n", "a: 1\n--- |\n  text\n", "a: 1\r\n---\r\nb: 2\r\n",
		"a: [1,\n---\nb: 2\n", "a: &x 1\nb: *x\n---\nc: 3\n", "---   # marker with comment\na: 1\n", "a: 1\n----\nb: 2\n",
		"k: v\n" + strings.Repeat("x: y\n---\n", 50),
	} {
		sameAsRead(t, in, Limits{})
	}
	sameAsRead(t, "a: 1\n---\nb: "+strings.Repeat("x", 200)+"\n", Limits{MaxDocumentBytes: 100})
	sameAsRead(t, "a: "+strings.Repeat("y", 100<<10)+"\n---\nb: 1\n", Limits{}) // a line longer than the buffer
}

func FuzzStreamMatchesRead(f *testing.F) {
	for _, s := range []string{"a: 1\n---\nb: 2\n", "---\n...\n%YAML 1.2\n---\nc: [1]\n", "--- |\n x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { sameAsRead(t, in, Limits{MaxDocumentBytes: 4096}) })
}
