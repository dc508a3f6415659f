// Command keyway renders, seals and syncs Kubernetes secrets for GitOps.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyway-dev/keyway/internal/startup"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerCommand {
		os.Exit(runBuildWorker(os.Stdin, os.Stdout, os.Stderr))
	}
	resumeGC(os.Args[1:], os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.LookupEnv)
	stop()
	os.Exit(code)
}

// resumeGC turns the collector back on after package initialisation (see internal/startup).
// Most commands live for well under a second (an Argo CD generate is one process per
// application refresh): collecting garbage less often saves a third of their CPU at no
// measured cost in peak RSS. The long-running commands (controller, argocd serve), and anyone
// who set GOGC, get the usual setting.
func resumeGC(args []string, lookup func(string) (string, bool)) {
	long := len(args) > 0 && args[0] == "controller" || len(args) > 1 && args[0] == "argocd" && args[1] == "serve"
	if _, set := lookup("GOGC"); !set && !long {
		startup.Resume(400)
		return
	}
	startup.Resume(0)
}
