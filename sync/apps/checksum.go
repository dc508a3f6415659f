package apps

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyway-dev/keyway/internal/redact"
	"github.com/keyway-dev/keyway/sync/api/argocd/v1alpha1"
	"github.com/keyway-dev/keyway/sync/apply"
)

// Secret checksums on pod templates.
const (
	// AnnotationSecretChecksum on a pod template is a keyed hash of the Secrets the pods
	// consume, so a rotated value rolls the workload.
	AnnotationSecretChecksum = "keyway.dev/secret-checksum"
	// AnnotationRollOnSecretChange: "false" on a workload leaves its pod template alone.
	AnnotationRollOnSecretChange = "keyway.dev/roll-on-secret-change"
	checksumKeySecret            = "keyway-daemon-checksum-key"
)

var podTemplateKinds = map[string]bool{"apps/Deployment": true, "apps/StatefulSet": true, "apps/DaemonSet": true, "argoproj.io/Rollout": true}

// annotateChecksums puts the checksum of the Secrets each workload consumes (env,
// envFrom, volumes, projected volumes) on its pod template: Secrets this render makes are
// hashed from the render, others (synced by an ExternalSecret, unsealed from a
// SealedSecret) from the cluster. The hash is an HMAC under a key kept in the state
// namespace, so a checksum cannot be used to guess a low-entropy value.
func (d *Daemon) annotateChecksums(ctx context.Context, a *v1alpha1.Application, items []*apply.Object, t Trigger) error {
	dest := a.Spec.Destination.Namespace
	if dest == "" {
		dest = "default"
	}
	nsOf := func(u *unstructured.Unstructured) string {
		if ns := u.GetNamespace(); ns != "" {
			return ns
		}
		return dest
	}
	rendered := map[string]map[string]string{}
	for _, it := range items {
		if it.Obj.GetAPIVersion() == "v1" && it.Obj.GetKind() == "Secret" && !it.IsHook() {
			rendered[nsOf(it.Obj)+"/"+it.Obj.GetName()] = secretData(it.Obj)
		}
	}
	var key []byte
	for _, it := range items {
		gk := it.Obj.GroupVersionKind().GroupKind()
		if !podTemplateKinds[gk.Group+"/"+gk.Kind] || it.Obj.GetAnnotations()[AnnotationRollOnSecretChange] == "false" {
			continue
		}
		tmpl, ok, _ := unstructured.NestedMap(it.Obj.Object, "spec", "template")
		if !ok {
			continue
		}
		names := consumedSecrets(tmpl)
		if len(names) == 0 {
			continue
		}
		if key == nil {
			var err error
			if key, err = d.checksumKey(ctx, t != DiffOnly); err != nil {
				return err
			}
		}
		m := hmac.New(sha256.New, key)
		for _, n := range names {
			ref := nsOf(it.Obj) + "/" + n
			data, ok := rendered[ref]
			if !ok {
				// Read from the cluster once per render, however many workloads use it.
				data = d.liveSecretData(ctx, nsOf(it.Obj), n)
				rendered[ref] = data
			}
			fmt.Fprintf(m, "%s\x00", n)
			for _, k := range sortedKeys(data) {
				fmt.Fprintf(m, "%s\x00%s\x00", k, data[k])
			}
		}
		ann, _, _ := unstructured.NestedStringMap(it.Obj.Object, "spec", "template", "metadata", "annotations")
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationSecretChecksum] = hex.EncodeToString(m.Sum(nil))[:32]
		if err := unstructured.SetNestedStringMap(it.Obj.Object, ann, "spec", "template", "metadata", "annotations"); err != nil {
			return fmt.Errorf("%s: pod template annotations: %v", it.Source, err)
		}
	}
	return nil
}

// consumedSecrets lists the Secret names a pod template reads, sorted.
func consumedSecrets(tmpl map[string]any) []string {
	set := map[string]bool{}
	add := func(v any, fields ...string) {
		if m, ok := v.(map[string]any); ok {
			if s, ok, _ := unstructured.NestedString(m, fields...); ok && s != "" {
				set[s] = true
			}
		}
	}
	spec, _ := tmpl["spec"].(map[string]any)
	for _, list := range []string{"containers", "initContainers", "ephemeralContainers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			envs, _ := cm["env"].([]any)
			for _, e := range envs {
				add(e, "valueFrom", "secretKeyRef", "name")
			}
			froms, _ := cm["envFrom"].([]any)
			for _, f := range froms {
				add(f, "secretRef", "name")
			}
		}
	}
	vols, _ := spec["volumes"].([]any)
	for _, v := range vols {
		add(v, "secret", "secretName")
		vm, _ := v.(map[string]any)
		sources, _, _ := unstructured.NestedSlice(vm, "projected", "sources")
		for _, s := range sources {
			add(s, "secret", "name")
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// secretData is a rendered Secret's data as base64 values (stringData encoded, winning as
// the API server lets it).
func secretData(u *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	data, _, _ := unstructured.NestedMap(u.Object, "data")
	for k, v := range data {
		out[k] = fmt.Sprint(v)
	}
	sdata, _, _ := unstructured.NestedMap(u.Object, "stringData")
	for k, v := range sdata {
		out[k] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(v)))
	}
	return out
}

func (d *Daemon) liveSecretData(ctx context.Context, ns, name string) map[string]string {
	s, err := d.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return map[string]string{"\x00missing": "1"}
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = base64.StdEncoding.EncodeToString(v)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checksumKey returns the checksum key, creating it in the state namespace on first use —
// or, when create is off (keyway diff writes nothing), using a key of this process only.
func (d *Daemon) checksumKey(ctx context.Context, create bool) ([]byte, error) {
	d.mu.Lock()
	k := d.ckey
	d.mu.Unlock()
	if k != nil {
		return k, nil
	}
	secrets := d.hub.kube.CoreV1().Secrets(d.o.StateNamespace)
	s, err := secrets.Get(ctx, checksumKeySecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if !create {
			return key, nil
		}
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: checksumKeySecret, Namespace: d.o.StateNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "keyway"}}, Data: map[string][]byte{"key": key}}
		s, err = secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			s, err = secrets.Get(ctx, checksumKeySecret, metav1.GetOptions{})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the secret checksum key (Secret %s/%s): %s", d.o.StateNamespace, checksumKeySecret, redact.APIError(err))
	}
	if len(s.Data["key"]) < 16 {
		return nil, fmt.Errorf("the checksum key in Secret %s/%s is missing or short", d.o.StateNamespace, checksumKeySecret)
	}
	d.mu.Lock()
	d.ckey = s.Data["key"]
	d.mu.Unlock()
	return s.Data["key"], nil
}
