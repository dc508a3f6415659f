package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keyway-dev/keyway/sync/apps"
)

// printOnce prints `keyway daemon --once`'s line per application and fails unless every
// one is Synced and Healthy.
func printOnce(a *app, statuses []apps.Status) error {
	ok := true
	if len(statuses) == 0 {
		fmt.Fprintln(a.out, "no applications: the ApplicationSets generated none")
	}
	for _, s := range statuses {
		rev := s.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev == "" {
			rev = "-"
		}
		fmt.Fprintf(a.out, "%-24s %-12s %-9s %-11s applied=%d unchanged=%d pruned=%d", s.Name, rev, s.Sync, s.Health, s.Applied, s.Unchanged, s.Pruned)
		if s.Message != "" && !s.OK() {
			fmt.Fprintf(a.out, "  %s", oneLine(s.Message))
		}
		fmt.Fprintln(a.out)
		ok = ok && s.OK()
	}
	if !ok {
		return silentError{errors.New("not every application is Synced and Healthy")}
	}
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
