package sealing_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/sealing"
)

// A Secret sealed for a cluster's key opens only with that key, under the same name and
// namespace (strict scope); the template's data render over the unsealed values.
func ExampleSeal() {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		StringData: map[string]string{"password": "s3cret"},
	}
	ss, err := sealing.Seal(rand.Reader, &key.PublicKey, s, sealing.SealOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	url := `postgres://shop:{{ .password }}@db/shop`
	ss.Spec.Template.Data = map[string]*string{"url": &url}

	opened, _, err := sealing.Unseal(context.Background(), rand.Reader, ss, []*rsa.PrivateKey{key})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(opened.Namespace+"/"+opened.Name, string(opened.Data["password"]), string(opened.Data["url"]))

	ss.Metadata.Namespace = "elsewhere"
	_, _, err = sealing.Unseal(context.Background(), rand.Reader, ss, []*rsa.PrivateKey{key})
	fmt.Println(err)
	// Output:
	// shop/db s3cret postgres://shop:s3cret@db/shop
	// SealedSecret elsewhere/db key "password" (scope strict): cannot decrypt: no key opens it, its scope does not match, or it was altered
}
