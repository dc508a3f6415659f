package apply

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Key names an object: group, kind, namespace, name.
type Key struct{ Group, Kind, Namespace, Name string }

// KeyOf is the key of u.
func KeyOf(u *unstructured.Unstructured) Key {
	gk := u.GroupVersionKind().GroupKind()
	return Key{gk.Group, gk.Kind, u.GetNamespace(), u.GetName()}
}

// String is the key as the inventory and Argo CD's tracking id write it:
// group/kind/namespace/name.
func (k Key) String() string { return k.Group + "/" + k.Kind + "/" + k.Namespace + "/" + k.Name }

func (k Key) GroupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

// ParseKey reads a key written by String.
func ParseKey(s string) (Key, error) {
	p := strings.Split(s, "/")
	if len(p) != 4 || p[1] == "" || p[3] == "" {
		return Key{}, fmt.Errorf("inventory entry %q: want group/kind/namespace/name", s)
	}
	return Key{p[0], p[1], p[2], p[3]}, nil
}
