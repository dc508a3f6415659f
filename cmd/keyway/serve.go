package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyway-dev/keyway/plugins/argocd"
	"github.com/keyway-dev/keyway/plugins/argocd/cmp"
	"github.com/keyway-dev/keyway/providers"
)

func newArgoCDServe(a *app) *cobra.Command {
	var socket, workDir string
	var maxRepo int64
	var keep int
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "serve [--socket PATH] [-- GENERATE-FLAGS...]",
		Short: "Serve Argo CD's plugin protocol on a Unix socket, rendering in this process",
		Long: `Serve answers Argo CD's repo-server on the plugin socket itself, in place of
argocd-cmp-server: discovery, the parameters announcement and generate, with the same
behaviour as 'keyway argocd discover|parameters|generate' under argocd-cmp-server, but in
one long-lived process, so a generate does not pay keyway's start-up.

Each request's repository arrives as a tar stream (checked against its checksum and size,
unpacked under --work-dir, nothing may leave it) with Argo CD's environment. The last
--keep-repos unpacked repositories are kept by content: Argo CD sends the same repository for
every refresh of every application in it until the revision changes. Of the environment, only
ARGOCD_APP_*, ARGOCD_ENV_* and KUBE_* entries of it are used, and ARGOCD_ENV_* entries that
would steer keyway are refused unless --argocd-allow-env, given after --, allows them.
Flags after -- are generate's and apply to every request; keyway's own settings also come
from this process's environment (KEYWAY_*, VAULT_*, …) and --config.

The socket's name is the plugin's name as Argo CD shows it (keyway-v1 matches
examples/argocd/plugin.yaml), in the directory the repo-server watches.`,
		Example: `  keyway argocd serve --socket /home/argocd/cmp-server/plugins/keyway-v1.sock -- --config /etc/keyway/config.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return usageError{fmt.Errorf("unexpected argument %q: generate's flags go after --", args[0])}
			}
			h := &servedPlugin{a: a, flags: args, pool: providers.NewPool(registry(), a.log, idle)}
			// Shutting down revokes every Vault token the pool logged in for.
			defer func() {
				if err := h.pool.Close(); err != nil {
					a.log.Warn("closing backend clients", "error", err)
				}
			}()
			if err := h.checkFlags(); err != nil {
				return usageError{err}
			}
			srv := cmp.New(h, cmp.Options{WorkDir: workDir, MaxRepoBytes: maxRepo, KeepRepos: keep, Logger: a.log})
			return srv.Serve(cmd.Context(), socket)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "/home/argocd/cmp-server/plugins/keyway-v1.sock", "the plugin socket")
	cmd.Flags().StringVar(&workDir, "work-dir", "", "where requests' repositories are unpacked (default the temporary directory)")
	cmd.Flags().Int64Var(&maxRepo, "max-repo-bytes", 1<<30, "largest repository accepted, compressed or unpacked")
	cmd.Flags().IntVar(&keep, "keep-repos", 8, "unpacked repositories kept for reuse by content (-1: none)")
	cmd.Flags().DurationVar(&idle, "idle-client-timeout", 10*time.Minute, "close a backend client (and revoke its Vault token) after this long unused")
	return cmd
}

// servedPlugin runs keyway's argocd commands in process for each request, with the request's
// environment over this process's.
type servedPlugin struct {
	a     *app
	flags []string        // generate's flags, from after --
	pool  *providers.Pool // backend clients shared by requests with equal settings
}

// requestEnv are the entries a request may contribute: what Argo CD's repo-server sends.
var requestEnv = []string{"ARGOCD_APP_", "ARGOCD_ENV_", "KUBE_"}

func (p *servedPlugin) run(ctx context.Context, req cmp.App, args ...string) (stdout string, err error) {
	own := map[string]string{}
	var environ []string
	for _, kv := range req.Env {
		k, v, _ := strings.Cut(kv, "=")
		for _, pre := range requestEnv {
			if strings.HasPrefix(k, pre) {
				own[k] = v
				environ = append(environ, kv)
				break
			}
		}
	}
	for _, kv := range p.a.environ() {
		if k, _, _ := strings.Cut(kv, "="); !has(own, k) {
			environ = append(environ, kv)
		}
	}
	lookup := func(k string) (string, bool) {
		if v, ok := own[k]; ok {
			return v, true
		}
		return p.a.env(k)
	}
	var out, errb bytes.Buffer
	code := exitFailed
	func() {
		// One request's failure must not take the others down with the process, as it could
		// not when each request was a process of its own.
		defer func() {
			if r := recover(); r != nil {
				p.a.log.Error("request failed with a panic", "app", req.Name, "command", args[1], "panic", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
				errb.Reset()
				errb.WriteString("keyway: internal error; the sidecar's log has the details")
			}
		}()
		code = runApp(ctx, &app{streams: streams{in: strings.NewReader(""), out: &out, err: &errb}, env: lookup, environ: func() []string { return environ }, pool: p.pool}, args)
	}()
	if code != exitOK {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = fmt.Sprintf("keyway %s failed", args[1])
		}
		p.a.log.Warn("request failed", "app", req.Name, "command", args[1])
		return "", errors.New(msg)
	}
	// What the command logged goes to the sidecar's own log.
	_, _ = p.a.err.Write(errb.Bytes())
	return out.String(), nil
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// checkFlags parses generate's flags once at start-up, so a typo stops the server rather
// than every request.
func (p *servedPlugin) checkFlags() error {
	gen, _, err := newRootCommand(p.a).Find([]string{"argocd", "generate"})
	if err != nil {
		return err
	}
	if err := gen.ParseFlags(p.flags); err != nil { // generate's own and keyway's global flags
		return fmt.Errorf("generate flags after --: %w", err)
	}
	if rest := gen.Flags().Args(); len(rest) > 0 {
		return fmt.Errorf("generate flags after --: unexpected argument %q", rest[0])
	}
	return nil
}

func (p *servedPlugin) Generate(ctx context.Context, app cmp.App) ([]string, error) {
	args := append(append([]string{"argocd", "generate"}, p.flags...), "-o", "yaml", app.Dir)
	out, err := p.run(ctx, app, args...)
	if err != nil || strings.TrimSpace(out) == "" {
		return nil, err
	}
	// The repo-server splits each manifest string as a YAML stream, so the whole output
	// goes as one, exactly as generate wrote it.
	return []string{out}, nil
}

// Discover and Parameters call what the CLI's discover and parameters call; they read
// only the request's repository.
func (p *servedPlugin) Discover(_ context.Context, app cmp.App) (bool, error) {
	found, err := argocd.FindReference(app.Dir)
	return found != "", err
}

func (p *servedPlugin) Parameters(_ context.Context, app cmp.App) ([]cmp.Announcement, error) {
	as := argocd.Parameters(app.Dir)
	res := make([]cmp.Announcement, len(as))
	for i, a := range as {
		res[i] = cmp.Announcement{Name: a.Name, Title: a.Title, Tooltip: a.Tooltip, CollectionType: a.CollectionType, String: a.String, Array: a.Array, Map: a.Map}
	}
	return res, nil
}
