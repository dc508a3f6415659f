package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Stream reads documents from r one at a time, for inputs too large to hold: Next parses
// the next document exactly as Read would (same splitting, indexes, lines and limits) while
// holding only that document's text.
type Stream struct {
	r      *bufio.Reader
	source string
	limits Limits

	line    int    // number of the next line to read, 1-based
	read    int64  // bytes read
	cur     chunk  // the chunk being read; its text is buf
	buf     []byte //
	flushed int    // chunks cut so far, directives included (split's len(chunks))
	carry   []byte // directives waiting for their document
	index   int    // index of the next document
	eof     bool
}

// NewStream returns a Stream over r.
func NewStream(r io.Reader, source string, limits Limits) *Stream {
	return &Stream{r: bufio.NewReaderSize(r, 64<<10), source: source, limits: limits.WithDefaults(), line: 1, cur: chunk{line: 1, verbatim: true}}
}

// Next returns the next non-empty document, or io.EOF after the last.
func (s *Stream) Next() (*Document, error) {
	for {
		c, ok, err := s.nextChunk()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, io.EOF
		}
		if s.flushed > s.limits.MaxDocuments {
			return nil, &Error{Source: s.source, Index: s.index, Line: c.line, Msg: fmt.Sprintf("more than %d documents (empty ones count)", s.limits.MaxDocuments)}
		}
		// Directives (%YAML …) belong to the document after them.
		if onlyDirectives(c.text) && bytes.Contains(c.text, []byte("%")) {
			s.carry = append(s.carry, c.text...)
			continue
		}
		if s.carry != nil {
			c.text = append(append(append([]byte(nil), s.carry...), "---\n"...), c.text...)
			c.verbatim, s.carry = false, nil
		}
		i := s.index
		s.index++
		if len(c.text) > s.limits.MaxDocumentBytes {
			return nil, &Error{Source: s.source, Index: i, Line: c.line, Msg: fmt.Sprintf("document is larger than %d bytes", s.limits.MaxDocumentBytes)}
		}
		d, err := parseChunk(c, i, s.source, s.limits)
		if err != nil {
			return nil, err
		}
		if d != nil {
			return d, nil
		}
	}
}

// nextChunk is split's loop, one line at a time: it returns the next chunk cut at a
// document marker, or ok=false at the end.
func (s *Stream) nextChunk() (chunk, bool, error) {
	for !s.eof {
		l, err := s.readLine()
		if err != nil {
			return chunk{}, false, err
		}
		if l == nil {
			s.eof = true
			if len(s.buf) > 0 || s.flushed == 0 {
				return s.flush(), true, nil
			}
			return chunk{}, false, nil
		}
		line := s.line
		s.line++
		text := bytes.TrimRight(bytes.TrimRight(l, "\n"), "\r")
		if !marker(text, "---") && !marker(text, "...") {
			s.buf = append(s.buf, l...)
			if len(s.buf) > s.limits.MaxDocumentBytes+64<<10 {
				return chunk{}, false, &Error{Source: s.source, Index: s.index, Line: s.cur.line, Msg: fmt.Sprintf("document is larger than %d bytes", s.limits.MaxDocumentBytes)}
			}
			continue
		}
		var out chunk
		cut := len(s.buf) > 0 || s.flushed > 0 || marker(text, "...")
		if cut {
			out = s.flush()
		}
		if rest := bytes.TrimSpace(text[3:]); marker(text, "---") && len(rest) > 0 && rest[0] != '#' {
			s.cur, s.buf = chunk{line: line, verbatim: false}, append([]byte(nil), l...) // "--- |" stays with its document
		} else {
			s.cur, s.buf = chunk{line: line + 1, verbatim: true}, nil
		}
		if cut {
			return out, true, nil
		}
	}
	return chunk{}, false, nil
}

func (s *Stream) flush() chunk {
	c := s.cur
	c.text = s.buf
	s.buf = nil
	s.flushed++
	return c
}

// readLine returns the next line with its newline, or nil at the end of the input.
func (s *Stream) readLine() ([]byte, error) {
	var l []byte
	for {
		part, err := s.r.ReadSlice('\n')
		l = append(l, part...)
		if s.read += int64(len(part)); s.read > s.limits.MaxStreamBytes {
			return nil, &Error{Source: s.source, Index: -1, Msg: fmt.Sprintf("input is larger than %d bytes", s.limits.MaxStreamBytes)}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if len(l) > s.limits.MaxDocumentBytes+64<<10 {
				return nil, &Error{Source: s.source, Index: s.index, Line: s.line, Msg: fmt.Sprintf("document is larger than %d bytes", s.limits.MaxDocumentBytes)}
			}
			continue
		case errors.Is(err, io.EOF):
			if len(l) == 0 {
				return nil, nil
			}
			return l, nil
		case err != nil:
			return nil, &Error{Source: s.source, Index: -1, Msg: err.Error()}
		}
		return l, nil
	}
}
