package providers

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReason(t *testing.T) {
	for in, want := range map[string]string{
		"1 error occurred:\n\t* permission denied\n\n": "1 error occurred: * permission denied",
		"bad\x1b[2J\x00request":                        "bad [2J request",
		"<html><body>oops</body></html>":               "(a non-API response: markup omitted)",
		"a < b > c":                                    "a < b > c",
		strings.Repeat("é", 200):                       strings.Repeat("é", MaxReason) + "…",
	} {
		if got := Reason(in); got != want {
			t.Errorf("Reason(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Reason(strings.Repeat("x", 10000)); utf8.RuneCountInString(got) != MaxReason+1 {
		t.Errorf("Reason of 10000 bytes has %d runes", utf8.RuneCountInString(got))
	}
}
