package sealedsecrets_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyway-dev/keyway/sealing"
)

// TestSecretRejected: a SealedSecret whose Secret the API server refuses for what it is (a
// kubernetes.io/tls Secret without tls.crt: invalid every time) gets Synced=False with
// ErrSecretRejected and a Warning event naming the API server's reason, and is not retried
// hot: the first attempt and the one the status write brings back, not one per back-off
// step (the issue saw 144 retries in an hour, each decrypting).
func TestSecretRejected(t *testing.T) {
	f := setup(t)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad-tls", Namespace: "app"}, Type: corev1.SecretTypeTLS,
		StringData: map[string]string{"password": canary + "-tls"}}
	ss, err := sealing.Seal(rand.Reader, f.pub, s, sealing.SealOptions{})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second)
	f.create(t, ss)
	poll(t, "Synced=False ErrSecretRejected", func() bool {
		st, reason, _ := condition(t, f, "bad-tls")
		return st == "False" && reason == "ErrSecretRejected"
	})
	poll(t, "the Warning event", func() bool { return strings.Contains(events(t, f, "bad-tls"), "Warning ErrSecretRejected") })
	ev := events(t, f, "bad-tls")
	if !strings.Contains(ev, "tls.crt") || strings.Contains(ev, canary) {
		t.Fatalf("event: %q", ev)
	}
	time.Sleep(3 * time.Second) // client-go's back-off would have retried about ten times by now
	reqs, err := env.Requests(since, "")
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, r := range reqs {
		if r.Resource == "secrets" && r.Verb == "create" && strings.Contains(r.URI, "/namespaces/app/secrets?") && r.Code == 422 {
			creates++
		}
	}
	if creates < 1 || creates > 2 {
		t.Fatalf("%d refused creates of the Secret in 3 s, want 1 or 2", creates)
	}
}
