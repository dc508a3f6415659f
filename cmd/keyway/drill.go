package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/sync/apps"
)

const exportHeader = "# keyway daemon export: SENSITIVE. This stream holds repository and cluster credentials%s.\n# Keep it where you keep those; restore with: keyway daemon import -f FILE --apps-dir DIR\n"

// newDaemonExportCommand prints what a restore needs, as the guide's `argocd admin export`.
func newDaemonExportCommand(a *app) *cobra.Command {
	var kf kubeFlags
	var appPaths []string
	var stateNS, keysNS, output string
	var withKeys bool
	cmd := &cobra.Command{
		Use:   "export --app PATH [--include-sealing-keys] [-o FILE]",
		Short: "Print what restoring this daemon needs: its applications, repository and cluster Secrets, and optionally the sealing keys",
		Long: `export writes one YAML stream with the Application, AppProject and ApplicationSet
manifests the daemon runs (--app, as given), the Argo CD repository, repo-creds and cluster
Secrets of --state-namespace, and with --include-sealing-keys the sealing key ring of
--keys-namespace. The stream is sensitive: it says so in its first line, and -o writes it
with mode 0600. 'keyway daemon import' restores it into a new cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(appPaths) == 0 {
				return usagef("--app is required")
			}
			m, err := apps.Load(appPaths)
			if err != nil {
				return usageError{err}
			}
			cfg, err := kf.config()
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			objs, what, err := apps.Export(cmd.Context(), kube, m, apps.ExportOptions{StateNamespace: stateNS, KeysNamespace: keysNS, SealingKeys: withKeys})
			if err != nil {
				return err
			}
			// A new file (0600) renamed into place: an existing -o file, or a link there,
			// is replaced, never written through; nothing is left half-written.
			out, err := newOutput(output)
			if err != nil {
				return err
			}
			defer out.discard()
			fmt.Fprintf(out.bw, exportHeader, what)
			for _, o := range objs {
				b, err := yaml.Marshal(o)
				if err != nil {
					return err
				}
				fmt.Fprintf(out.bw, "---\n%s", b)
			}
			if err := out.commit(a.out); err != nil {
				return err
			}
			fmt.Fprintf(a.err, "exported %d object(s): %s\n", len(objs), what)
			return nil
		},
	}
	kf.BindFlags(cmd.Flags())
	cmd.Flags().Lookup("namespace").Usage = "unused; see --keys-namespace"
	cmd.Flags().StringArrayVar(&appPaths, "app", nil, "the daemon's Application manifests: a file or a directory (repeatable)")
	cmd.Flags().StringVar(&stateNS, "state-namespace", "keyway-system", "the daemon's state namespace")
	cmd.Flags().StringVar(&keysNS, "keys-namespace", "kube-system", "namespace of the sealing key ring")
	cmd.Flags().BoolVar(&withKeys, "include-sealing-keys", false, "include the sealing key ring (private keys)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file (mode 0600) instead of stdout")
	return cmd
}

// newDaemonImportCommand restores an export: Secrets into the cluster, manifests to a
// directory for --app.
func newDaemonImportCommand(a *app) *cobra.Command {
	var kf kubeFlags
	var file, appsDir string
	cmd := &cobra.Command{
		Use:   "import -f FILE --apps-dir DIR",
		Short: "Restore a 'keyway daemon export' into this cluster",
		Long: `import creates the exported Secrets (repository, cluster and sealing keys) in their
namespaces — creating the namespaces, replacing Secrets of the same name — and writes the
Application, AppProject and ApplicationSet manifests to --apps-dir for 'keyway daemon --app
DIR'. Start the controller after importing the sealing keys, then the daemon.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" || appsDir == "" {
				return usagef("-f and --apps-dir are required")
			}
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			docs, err := manifest.Read(f, file, manifest.Limits{})
			if err != nil {
				return err
			}
			cfg, err := kf.config()
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			secrets, manifests, err := apps.Import(cmd.Context(), kube, docs, file, appsDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.err, "restored %d Secret(s); wrote %d manifest(s) to %s\n", secrets, manifests, appsDir)
			return nil
		},
	}
	kf.BindFlags(cmd.Flags())
	cmd.Flags().StringVarP(&file, "file", "f", "", "the export to restore")
	cmd.Flags().StringVar(&appsDir, "apps-dir", "", "directory to write the application manifests to")
	return cmd
}
