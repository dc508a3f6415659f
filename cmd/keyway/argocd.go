package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyway-dev/keyway/plugins/argocd"
	"github.com/keyway-dev/keyway/plugins/render"
)

// argocdFlags are the sidecar operator's policy for Applications.
type argocdFlags struct {
	AllowEnv     []string
	ProjectPaths []string
}

func (f *argocdFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.AllowEnv, "argocd-allow-env", nil, "environment names an Application may set through ARGOCD_ENV_ (e.g. VAULT_NAMESPACE); everything steering keyway is refused otherwise")
	fs.StringArrayVar(&f.ProjectPaths, "argocd-project-path", nil, "PROJECT=PREFIX: secret paths an Argo CD project may read, by whole segments (secret/data/team-a admits secret/data/team-a/db, not team-ab; end with * for a text prefix such as prod-*); BACKEND:PREFIX for one backend; PROJECT * for the rest; repeatable")
}

func (f *argocdFlags) policy() (argocd.Policy, error) {
	p := argocd.Policy{AllowEnv: f.AllowEnv}
	for _, kv := range f.ProjectPaths {
		proj, prefix, ok := strings.Cut(kv, "=")
		if !ok || proj == "" || prefix == "" {
			return p, usagef("--argocd-project-path %q: want PROJECT=PREFIX", kv)
		}
		if p.ProjectPaths == nil {
			p.ProjectPaths = map[string][]string{}
		}
		p.ProjectPaths[proj] = append(p.ProjectPaths[proj], prefix)
	}
	return p, nil
}

func newArgoCDCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "argocd",
		Short: "Argo CD Config Management Plugin (CMP v2) entry points",
		Long: `keyway in the sidecar of argocd-repo-server, run one of two ways: Argo CD's argocd-cmp-server
runs the commands examples/argocd/plugin.yaml names, or 'keyway argocd serve' answers the
repo-server on the plugin socket itself and does the same work in one long-lived process.

  discover    print the first file that holds a secret reference (the plugin matches when
              the output is not empty)
  parameters  announce the plugin's parameters, with the chart's values files found
  generate    render the application in the working directory
  serve       serve the plugin protocol on a Unix socket (see 'keyway argocd serve --help')

generate reads Argo CD's environment: ARGOCD_APP_NAME (the Helm release name),
ARGOCD_APP_NAMESPACE, ARGOCD_APP_PROJECT_NAME, ARGOCD_APP_SOURCE_PATH, KUBE_VERSION,
KUBE_API_VERSIONS and ARGOCD_APP_PARAMETERS (values-files, values, set, set-string,
skip-crds, release-name, source). Backend settings come from the sidecar's own flags,
environment and --config; an Application's ARGOCD_ENV_* entries that would steer keyway
(KEYWAY_*, AVP_*, VAULT_*, AWS_*, GOOGLE_*) are refused unless --argocd-allow-env names them.`,
	}
	cmd.AddCommand(newArgoCDGenerate(a), newArgoCDDiscover(a), newArgoCDParameters(a), newArgoCDServe(a))
	return cmd
}

func newArgoCDGenerate(a *app) *cobra.Command {
	var o renderOptions
	var af argocdFlags
	cmd := &cobra.Command{
		Use:   "generate [PATH]",
		Short: "Render the application in the working directory for Argo CD",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := argocd.Parse(a.environ())
			if err != nil {
				return err
			}
			pol, err := af.policy()
			if err != nil {
				return err
			}
			// Applications may only steer what the operator allowed; the overlay holds those.
			overlay, err := pol.Overlay(env, a.env)
			if err != nil {
				return err
			}
			a.env = overlay
			if err := applyEnv(cmd, overlay); err != nil {
				return err
			}
			if err := o.complete(cmd, overlay); err != nil {
				return err
			}
			ro, err := env.RenderOptions()
			if err != nil {
				return usageError{err}
			}
			dir := dirArg(args)
			root, err := env.RepoRoot(dir)
			if err != nil {
				return err
			}
			if o.SealNS == "" {
				o.SealNS = env.AppNamespace
			}
			a.log.Debug("argocd generate", "app", env.AppName, "project", env.Project, "revision", env.Revision, "source", ro.Source)
			return runRender(cmd, a, &o, []string{dir}, renderRun{
				load:  render.LoadOptions{Source: ro.Source, Helm: ro.Helm, Root: root},
				check: pol.RefCheck(env.Project),
			})
		},
	}
	o.BindFlags(cmd.Flags())
	af.BindFlags(cmd.Flags())
	return cmd
}

func newArgoCDDiscover(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "discover [PATH]",
		Short: "Print the first file under PATH (default .) that holds a secret reference",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			found, err := argocd.FindReference(dirArg(args))
			if err != nil {
				return err
			}
			if found != "" {
				fmt.Fprintln(a.out, found)
			}
			return nil
		},
	}
}

func newArgoCDParameters(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "parameters [PATH]",
		Short: "Announce the plugin's parameters as JSON (the dynamic parameters command)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return json.NewEncoder(a.out).Encode(argocd.Parameters(dirArg(args)))
		},
	}
}

// dirArg is the optional PATH argument, "." by default.
func dirArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "."
}
