package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyway-dev/keyway/sync/apps"
)

func newDiffCommand(a *app) *cobra.Command {
	var o daemonOptions
	var ro renderOptions
	var af argocdFlags
	cmd := &cobra.Command{
		Use:   "diff --app PATH [--app PATH...] [flags]",
		Short: "Show what `keyway daemon` would change in the cluster, as unified diffs",
		Long: `diff renders the applications as 'keyway daemon --once' would (children and
ApplicationSets included), checks every object with a server-side dry run against the
cluster, and prints a unified diff per object that would be created, changed or pruned.
It writes nothing to the cluster. A Secret's values never appear: each key shows as
(unchanged), (old value) and (new value), (added) or (removed); a secret value
substituted anywhere else (a ConfigMap, an environment variable) shows as (secret value).

Exit status: 0 no changes, 1 changes, 2 an error (a render, a refused object, an
unreachable cluster) — for pull-request checks in CI.`,
		Example: `  keyway diff --app root-app.yaml --git-rewrite https://github.com/your-org/=file://$PWD/ \
    --secrets-file secrets.enc.yaml --age-identity key.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The diff masks secret values by structure: a Secret's data, and every field
			// a reference filled (whatever its modifier), whole.
			d, _, closeAll, err := setupDaemon(cmd, a, &o, &ro, &af, false)
			if err != nil {
				return err
			}
			defer closeAll()
			statuses := d.SyncAll(cmd.Context(), apps.DiffOnly)
			changes, failed := 0, 0
			for _, s := range statuses {
				if s.Failed() {
					failed++
					fmt.Fprintf(a.err, "keyway: %s: %s\n", s.Name, oneLine(s.Message))
					continue
				}
				for _, od := range s.Diffs {
					changes++
					fmt.Fprintf(a.out, "# %s: %s %s\n%s", s.Name, od.Action, od.Key, od.Diff)
				}
			}
			switch {
			case failed > 0:
				return codedError{exitUsage, silentError{errors.New("diff failed")}}
			case changes > 0:
				fmt.Fprintf(a.err, "%d object(s) would change\n", changes)
				return silentError{errors.New("changes")}
			}
			fmt.Fprintln(a.err, "no changes")
			return nil
		},
	}
	bindDaemonFlags(cmd.Flags(), &o, &ro, &af, false)
	return cmd
}

// codedError ends a command with a chosen exit status.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }
