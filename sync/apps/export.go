package apps

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/keyway-dev/keyway/internal/gitsource"
	"github.com/keyway-dev/keyway/internal/manifest"
	"github.com/keyway-dev/keyway/internal/reference"
	"github.com/keyway-dev/keyway/sealing"
	"github.com/keyway-dev/keyway/sync/apply"
)

// ExportOptions say where Export reads the daemon's state.
type ExportOptions struct {
	StateNamespace string // repository, repo-creds and cluster Secrets
	KeysNamespace  string // the sealing key ring
	SealingKeys    bool   // include the sealing keys (private keys)
}

// Export gathers what restoring the daemon needs, as Argo CD's `argocd admin export`: the
// manifests it runs, the Argo CD repository, repo-creds and cluster Secrets, and, when
// asked, the sealing key ring; Secrets keep only what a restore needs. what says what the
// stream holds, for its sensitive header.
func Export(ctx context.Context, kube kubernetes.Interface, m Manifests, o ExportOptions) (objs []any, what string, err error) {
	for _, p := range m.Projects {
		objs = append(objs, p)
	}
	for _, r := range m.Apps {
		objs = append(objs, r)
	}
	for _, s := range m.Sets {
		objs = append(objs, s)
	}
	secrets, err := kube.CoreV1().Secrets(o.StateNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: gitsource.SecretTypeLabel + " in (repository,repo-creds,cluster)"})
	if err != nil {
		return nil, "", fmt.Errorf("reading the Secrets of %s: %w", o.StateNamespace, err)
	}
	for i := range secrets.Items {
		objs = append(objs, cleanSecret(&secrets.Items[i]))
	}
	what = fmt.Sprintf("%d application manifest(s), %d state Secret(s)", len(m.Projects)+len(m.Apps)+len(m.Sets), len(secrets.Items))
	if o.SealingKeys {
		keys, err := kube.CoreV1().Secrets(o.KeysNamespace).List(ctx, metav1.ListOptions{LabelSelector: sealing.KeyLabel})
		if err != nil {
			return nil, "", fmt.Errorf("the sealing keys in %s: %w", o.KeysNamespace, err)
		}
		if len(keys.Items) == 0 {
			return nil, "", fmt.Errorf("--include-sealing-keys: no sealing keys in %s (--keys-namespace)", o.KeysNamespace)
		}
		for i := range keys.Items {
			objs = append(objs, cleanSecret(&keys.Items[i]))
		}
		what += " and the sealing private keys"
	}
	return objs, what, nil
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
		if k != corev1.LastAppliedConfigAnnotation && k != apply.AnnotationApplied {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Import restores an export (docs, read from file): its Secrets into their namespaces
// (creating the namespaces, replacing Secrets of the same name) and its Application,
// AppProject and ApplicationSet manifests as files in appsDir. Every name is checked before
// anything is written, and files are written through appsDir's root.
func Import(ctx context.Context, kube kubernetes.Interface, docs []*manifest.Document, file, appsDir string) (secrets, manifests int, err error) {
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		kind, name := manifest.String(d.Root, "kind"), manifest.String(d.Root, "metadata", "name")
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return 0, 0, fmt.Errorf("%s: document %d: %s %q: the name is not a DNS-1123 subdomain; nothing was imported", file, d.Index, kind, reference.Abbrev(name))
		}
	}
	if err := os.MkdirAll(appsDir, 0o755); err != nil {
		return 0, 0, err
	}
	dir, err := os.OpenRoot(appsDir)
	if err != nil {
		return 0, 0, err
	}
	defer dir.Close()
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		kind, name := manifest.String(d.Root, "kind"), manifest.String(d.Root, "metadata", "name")
		switch kind {
		case "Secret":
			var s corev1.Secret
			if err := manifest.Decode(d, &s); err != nil {
				return secrets, manifests, err
			}
			if err := restoreSecret(ctx, kube, &s); err != nil {
				return secrets, manifests, err
			}
			secrets++
		case "Application", "AppProject", "ApplicationSet":
			b, err := manifest.EncodeYAML(d)
			if err != nil {
				return secrets, manifests, err
			}
			if err := dir.WriteFile(strings.ToLower(kind)+"-"+name+".yaml", append(b, '\n'), 0o644); err != nil {
				return secrets, manifests, err
			}
			manifests++
		default:
			return secrets, manifests, fmt.Errorf("%s: document %d: kind %q is not part of an export", file, d.Index, kind)
		}
	}
	return secrets, manifests, nil
}

func restoreSecret(ctx context.Context, kube kubernetes.Interface, s *corev1.Secret) error {
	if s.Namespace == "" {
		return fmt.Errorf("the export has Secret %s without a namespace", s.Name)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", s.Namespace, err)
	}
	api := kube.CoreV1().Secrets(s.Namespace)
	_, err := api.Create(ctx, s, metav1.CreateOptions{FieldManager: "keyway-import"})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := api.Get(ctx, s.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		s.ResourceVersion = cur.ResourceVersion
		_, err = api.Update(ctx, s, metav1.UpdateOptions{FieldManager: "keyway-import"})
	}
	if err != nil {
		return fmt.Errorf("restoring Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
