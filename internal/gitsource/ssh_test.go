package gitsource_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/keyway-dev/keyway/internal/gitsource"
)

// sshGitServer serves the repositories under root over ssh to one client key: an "exec"
// of git-upload-pack runs the git binary's upload-pack on the repository it names.
func sshGitServer(t *testing.T, root string, client ssh.PublicKey) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(c, cfg, root)
		}
	}()
	return l.Addr().String(), signer.PublicKey()
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig, root string) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, in, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range in {
				if req.Type != "exec" {
					_ = req.Reply(false, nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload[:4])
				line := string(req.Payload[4 : 4+n])
				repo := strings.Trim(strings.TrimPrefix(line, "git-upload-pack "), "'")
				_ = req.Reply(true, nil)
				cmd := exec.Command("git-upload-pack", filepath.Join(root, filepath.Base(repo)))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, io.Discard
				status := 0
				if err := cmd.Run(); err != nil {
					status = 1
				}
				_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
				return
			}
		}()
	}
}

// TestFetchSSH fetches over go-git's pure-Go ssh transport with a key from a repository
// Secret's shape, the host key checked against a known_hosts file; an unknown host key and
// a missing known_hosts are refused.
func TestFetchSSH(t *testing.T) {
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		t.Skip("git-upload-pack not installed")
	}
	repo, _, second := gitRepo(t)
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	clientSigner, _ := ssh.NewSignerFromKey(clientPriv)
	addr, hostKey := sshGitServer(t, filepath.Dir(repo), clientSigner.PublicKey())
	host, port, _ := net.SplitHostPort(addr)
	url := fmt.Sprintf("ssh://git@%s:%s/%s", host, port, filepath.Base(repo))
	known := filepath.Join(t.TempDir(), "known_hosts")
	_ = os.WriteFile(known, []byte(fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(hostKey))), 0o644)
	cred := gitsource.Credential{URL: url, SSHPrivateKey: string(pem.EncodeToMemory(block))}

	fetch := func(knownHosts string) (gitsource.Checkout, error) {
		c, _ := gitsource.New(gitsource.Options{Dir: t.TempDir(), Auth: func(_ context.Context, u string) (transport.AuthMethod, error) {
			return cred.Auth(u, knownHosts)
		}})
		return c.Fetch(context.Background(), url, "main")
	}
	co, err := fetch(known)
	if err != nil {
		t.Fatal(err)
	}
	if co.Revision != second {
		t.Fatalf("revision %s, want %s", co.Revision, second)
	}
	if _, err := fetch(""); err == nil || !strings.Contains(err.Error(), "known host keys") {
		t.Fatalf("without known_hosts: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewSignerFromKey(other)
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	_ = os.WriteFile(wrong, []byte(fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(otherKey.PublicKey()))), 0o644)
	if _, err := fetch(wrong); err == nil {
		t.Fatal("a host key other than the known one was accepted")
	}
}

// TestSecretAuth picks credentials as Argo CD does: the repository Secret whose url is the
// repository's (case, a trailing slash and .git aside), else the repo-creds Secret with the
// longest matching prefix; Secrets of other types are not read.
func TestSecretAuth(t *testing.T) {
	secret := func(name, typ, url, pw string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "keyway-system", Labels: map[string]string{gitsource.SecretTypeLabel: typ}},
			Data: map[string][]byte{"url": []byte(url), "username": []byte("u"), "password": []byte(pw)}}
	}
	kube := fake.NewClientset(
		secret("exact", "repository", "https://git.example/Org/App.git", "exact-pw"),
		secret("org", "repo-creds", "https://git.example/org/", "org-pw"),
		secret("host", "repo-creds", "https://git.example/", "host-pw"),
		secret("cluster", "cluster", "https://git.example/org/other", "cluster-pw"),
	)
	auth := gitsource.SecretAuth(kube, "keyway-system", "")
	for url, want := range map[string]string{
		"https://git.example/org/app":       "exact-pw",
		"https://git.example/org/other.git": "org-pw",
		"https://git.example/team/x.git":    "host-pw",
	} {
		a, err := auth(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := a.(*githttp.BasicAuth); !ok || b.Password != want {
			t.Fatalf("%s: %#v, want password %s", url, a, want)
		}
	}
	if a, _ := auth(context.Background(), "https://elsewhere.example/x.git"); a != nil {
		t.Fatalf("credentials for an unknown host: %#v", a)
	}
}
