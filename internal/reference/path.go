package reference

import (
	"errors"
	"fmt"
	"strings"
)

// CheckPath reports whether p is a canonical secret path: the one spelling a backend serves
// without normalising it into another. Policy checks (an Argo CD project's path prefixes)
// compare strings, so a path that a backend would clean — secret/data/team-a/../team-b,
// secret//team-b, secret/data/team-a/%2e%2e/team-b — must never reach them.
//
// A canonical path is non-empty; it may start with one '/' (SSM parameter names do); its
// segments are non-empty and neither "." nor ".."; it holds no '%' (percent escapes), no
// '\' and no control characters.
func CheckPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control character at byte %d", i)
		case c == '%':
			return errors.New("'%' is not allowed (a percent escape could hide a separator or '..')")
		case c == '\\':
			return errors.New(`'\' is not allowed`)
		}
	}
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		switch seg {
		case "":
			return errors.New("empty segment ('//' or a trailing '/')")
		case ".", "..":
			return fmt.Errorf("%q segment", seg)
		}
	}
	return nil
}

// HasPathPrefix reports whether canonical path p lies under prefix, segment by segment: a
// prefix ending in '/' matches the paths below it, "X*" the paths whose text starts with X
// (prod-* admits prod-db), "*" any path, and any other prefix only itself and the paths
// below it, so secret/data/team-a does not admit secret/data/team-ab. A leading '/' on
// either is ignored.
func HasPathPrefix(p, prefix string) bool {
	p, prefix = strings.TrimPrefix(p, "/"), strings.TrimPrefix(prefix, "/")
	if text, ok := strings.CutSuffix(prefix, "*"); ok {
		return strings.HasPrefix(p, text)
	}
	if prefix == "" {
		return false
	}
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(p, prefix)
	}
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
