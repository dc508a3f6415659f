package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// isJSON reports whether a secrets file is JSON: its first non-space byte opens an object.
// JSON is YAML, but YAML parsers refuse the surrogate-pair escapes JSON uses for characters
// beyond the Basic Multilingual Plane ("\ud83d\ude00"), so JSON files are read as JSON.
func isJSON(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// decodeJSON reads a JSON secrets file into the same shapes the YAML reader gives: maps,
// slices, strings, bools, int or float64 numbers. Duplicate keys are refused, as YAML
// refuses them; errors give a line and column and never quote content.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := jsonValue(dec, raw)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: invalid JSON: content after the top-level object", position(raw, dec.InputOffset()))
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, raw []byte) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonSyntax(raw, dec, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				at := dec.InputOffset()
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonSyntax(raw, dec, err)
				}
				k := kt.(string) // the decoder only yields string keys inside an object
				if _, dup := m[k]; dup {
					for at < int64(len(raw)) && bytes.IndexByte([]byte(" \t\r\n,"), raw[at]) >= 0 {
						at++
					}
					return nil, fmt.Errorf("%s: invalid JSON: key %q appears twice", position(raw, at), k)
				}
				if m[k], err = jsonValue(dec, raw); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntax(raw, dec, err)
			}
			return m, nil
		case '[':
			s := []any{}
			for dec.More() {
				v, err := jsonValue(dec, raw)
				if err != nil {
					return nil, err
				}
				s = append(s, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, jsonSyntax(raw, dec, err)
			}
			return s, nil
		}
		return nil, fmt.Errorf("%s: invalid JSON", position(raw, dec.InputOffset()))
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s: invalid JSON: a number out of range", position(raw, dec.InputOffset()))
		}
		return f, nil
	default: // string, bool, nil
		return t, nil
	}
}

// jsonSyntax keeps a decoding error's position only: encoding/json quotes the offending
// character, which may be part of a value. A Decoder's offsets count from the value it was
// scanning, so the position comes from scanning the whole file again.
func jsonSyntax(raw []byte, dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: invalid JSON: unexpected end of file", position(raw, int64(len(raw))))
	}
	off := dec.InputOffset()
	var v any
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(raw, &v), &se) {
		off = se.Offset - 1
	}
	return fmt.Errorf("%s: invalid JSON", position(raw, off))
}

func position(raw []byte, off int64) string {
	off = min(max(off, 0), int64(len(raw)))
	before := raw[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - int64(bytes.LastIndexByte(before, '\n'))
	return fmt.Sprintf("line %d, column %d", line, col)
}
