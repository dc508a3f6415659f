package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/sealing"
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
			ctx := cmd.Context()
			var objs []any
			for _, p := range m.Projects {
				objs = append(objs, p)
			}
			for _, r := range m.Apps {
				objs = append(objs, r)
			}
			for _, s := range m.Sets {
				objs = append(objs, s)
			}
			secrets, err := kube.CoreV1().Secrets(stateNS).List(ctx, metav1.ListOptions{
				LabelSelector: gitsource.SecretTypeLabel + " in (repository,repo-creds,cluster)"})
			if err != nil {
				return fmt.Errorf("reading the Secrets of %s: %w", stateNS, err)
			}
			for i := range secrets.Items {
				objs = append(objs, cleanSecret(&secrets.Items[i]))
			}
			what := ""
			if withKeys {
				keys, err := kube.CoreV1().Secrets(keysNS).List(ctx, metav1.ListOptions{LabelSelector: sealing.KeyLabel})
				if err != nil {
					return fmt.Errorf("the sealing keys in %s: %w", keysNS, err)
				}
				if len(keys.Items) == 0 {
					return fmt.Errorf("--include-sealing-keys: no sealing keys in %s (--keys-namespace)", keysNS)
				}
				for i := range keys.Items {
					objs = append(objs, cleanSecret(&keys.Items[i]))
				}
				what = " and the sealing private keys"
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
			fmt.Fprintf(a.err, "exported %d application manifest(s), %d state Secret(s)%s\n", len(m.Projects)+len(m.Apps)+len(m.Sets), len(secrets.Items), what)
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

// cleanSecret keeps what a restore needs: name, namespace, labels, annotations, type, data.
func cleanSecret(s *corev1.Secret) *corev1.Secret {
	return &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: withoutLastApplied(s.Annotations)},
		Type:       s.Type, Data: s.Data}
}

func withoutLastApplied(ann map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range ann {
		if k != "kubectl.kubernetes.io/last-applied-configuration" && k != apps.AnnotationApplied {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
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
			// Every name is checked before anything is written.
			for _, d := range docs {
				if d.Root == nil {
					continue
				}
				kind, name := manifest.String(d.Root, "kind"), manifest.String(d.Root, "metadata", "name")
				if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
					return fmt.Errorf("%s: document %d: %s %q: the name is not a DNS-1123 subdomain; nothing was imported", file, d.Index, kind, reference.Abbrev(name))
				}
			}
			if err := os.MkdirAll(appsDir, 0o755); err != nil {
				return err
			}
			dir, err := os.OpenRoot(appsDir)
			if err != nil {
				return err
			}
			defer dir.Close()
			secrets, manifests := 0, 0
			for _, d := range docs {
				if d.Root == nil {
					continue
				}
				kind, name := manifest.String(d.Root, "kind"), manifest.String(d.Root, "metadata", "name")
				switch kind {
				case "Secret":
					var s corev1.Secret
					if err := manifest.Decode(d, &s); err != nil {
						return err
					}
					if err := restoreSecret(cmd.Context(), kube, &s); err != nil {
						return err
					}
					secrets++
				case "Application", "AppProject", "ApplicationSet":
					b, err := manifest.EncodeYAML(d)
					if err != nil {
						return err
					}
					// Names are Kubernetes names (checked above), and files are written
					// through the directory's root: no name reaches outside --apps-dir.
					if err := dir.WriteFile(strings.ToLower(kind)+"-"+name+".yaml", append(b, '\n'), 0o644); err != nil {
						return err
					}
					manifests++
				default:
					return fmt.Errorf("%s: document %d: kind %q is not part of an export", file, d.Index, kind)
				}
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

func restoreSecret(ctx context.Context, kube kubernetes.Interface, s *corev1.Secret) error {
	if s.Namespace == "" {
		return fmt.Errorf("the export has Secret %s without a namespace", s.Name)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", s.Namespace, err)
	}
	secrets := kube.CoreV1().Secrets(s.Namespace)
	_, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: "keyway-import"})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := secrets.Get(ctx, s.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		s.ResourceVersion = cur.ResourceVersion
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: "keyway-import"})
	}
	if err != nil {
		return fmt.Errorf("restoring Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
