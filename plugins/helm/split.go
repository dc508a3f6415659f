package helm

import "strings"

// splitManifests cuts a template's output into documents exactly as Helm's
// releaseutil.SplitManifests does — at "---" that starts the output or follows a newline,
// with white space around the cut dropped — without its regular expression, whose
// backtracking cost a tenth of a render. FuzzSplitManifests holds the two equal.
//
// Helm's expression is `(?:^|\s*\n)---\s*` applied with regexp.Split to the trimmed output;
// \s there is RE2's [\t\n\f\r ], narrower than the Unicode white space that trimming removes.
func splitManifests(out string) []string {
	s := strings.TrimSpace(out)
	if s == "" {
		return nil
	}
	var docs []string
	add := func(d string) {
		if d != "" {
			docs = append(docs, strings.TrimSpace(d))
		}
	}
	beg, lastStart := 0, 0
	for from := 0; ; {
		start, end, ok := nextSeparator(s, from)
		if !ok {
			break
		}
		lastStart = start
		if end != 0 {
			add(s[beg:start])
		}
		beg, from = end, end
	}
	if lastStart != len(s) {
		add(s[beg:])
	}
	return docs
}

// nextSeparator finds the leftmost match of `(?:^|\s*\n)---\s*` in s at or after from.
func nextSeparator(s string, from int) (start, end int, ok bool) {
	if from == 0 && strings.HasPrefix(s, "---") {
		return 0, skipSpace(s, 3), true
	}
	k := strings.Index(s[from:], "\n---")
	if k < 0 {
		return 0, 0, false
	}
	nl := from + k // the newline before "---"
	// The match starts where the run of white space holding that newline starts.
	start = nl
	for start > from && isRE2Space(s[start-1]) {
		start--
	}
	return start, skipSpace(s, nl+4), true
}

func skipSpace(s string, i int) int {
	for i < len(s) && isRE2Space(s[i]) {
		i++
	}
	return i
}

func isRE2Space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}
