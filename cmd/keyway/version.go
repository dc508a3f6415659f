package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit may be stamped at link time:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123" ./cmd/keyway
var version, commit string

type buildInfo struct {
	Version, Commit, GoVersion, Platform string
	Modified                             bool
}

func readBuildInfo() buildInfo {
	bi := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if bi.Version == "" {
			bi.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if bi.Commit == "" {
					bi.Commit = s.Value
				}
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	if bi.Version == "" {
		bi.Version = "(devel)"
	}
	if bi.Commit == "" {
		bi.Commit = "unknown"
	}
	return bi
}

func newVersionCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print keyway's version, commit and Go version",
		Long: `Print keyway's version, the commit it was built from and the Go toolchain. The version
is stamped at link time by make release, or read from the module (go install
github.com/keyway-dev/keyway/cmd/keyway@v1.2.3); "(devel)" for a local build.

  keyway version -o json    the same as a JSON object, for scripts`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			bi := readBuildInfo()
			switch output {
			case "json":
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"version": bi.Version, "commit": bi.Commit, "modified": bi.Modified, "goVersion": bi.GoVersion, "platform": bi.Platform})
			case "", "text":
			default:
				return usageError{fmt.Errorf("--output %q: want text or json", output)}
			}
			commit := bi.Commit
			if bi.Modified {
				commit += " (modified)"
			}
			_, err := fmt.Fprintf(a.out, "keyway %s\ncommit: %s\ngo: %s %s\n", bi.Version, commit, bi.GoVersion, bi.Platform)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
