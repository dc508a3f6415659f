package gitsource

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Argo CD's repository Secret labels.
const (
	SecretTypeLabel = "argocd.argoproj.io/secret-type"
	TypeRepository  = "repository"
	TypeRepoCreds   = "repo-creds"
)

// Credential is what a repository Secret holds, as Argo CD names it.
type Credential struct {
	URL           string
	Username      string
	Password      string
	SSHPrivateKey string
}

// Auth turns the credential into a go-git auth method for url; knownHostsFile (an
// ssh_known_hosts file) is required for ssh, whose host keys are always checked.
func (c Credential) Auth(url, knownHostsFile string) (transport.AuthMethod, error) {
	if isSSH(url) {
		if c.SSHPrivateKey == "" {
			return nil, nil
		}
		signer, err := ssh.ParsePrivateKey([]byte(c.SSHPrivateKey))
		if err != nil {
			return nil, errors.New("sshPrivateKey: not an unencrypted private key in PEM/OpenSSH form")
		}
		cb, err := hostKeyCallback(knownHostsFile)
		if err != nil {
			return nil, err
		}
		user := "git"
		if rest, ok := strings.CutPrefix(url, "ssh://"); ok {
			if u, _, ok := strings.Cut(rest, "@"); ok && !strings.Contains(u, "/") {
				user = u
			}
		} else if u, _, ok := strings.Cut(url, "@"); ok {
			user = u
		}
		auth := &gitssh.PublicKeys{User: user, Signer: signer}
		auth.HostKeyCallback = cb
		return auth, nil
	}
	if c.Password == "" && c.Username == "" {
		return nil, nil
	}
	user := c.Username
	if user == "" {
		user = "git" // a token alone: any user name works on the usual hosts
	}
	return &githttp.BasicAuth{Username: user, Password: c.Password}, nil
}

func isSSH(url string) bool {
	if strings.HasPrefix(url, "ssh://") {
		return true
	}
	// scp-like: git@host:org/repo.git
	return !strings.Contains(url, "://") && strings.Contains(url, "@") && strings.Contains(url, ":")
}

// hostKeyCallback checks host keys against the known_hosts file; there is no "accept
// anything".
func hostKeyCallback(knownHostsFile string) (ssh.HostKeyCallback, error) {
	if knownHostsFile == "" {
		return nil, errors.New("ssh needs known host keys (--git-known-hosts FILE); keyway never accepts an unknown host key")
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("--git-known-hosts: %w", err)
	}
	return cb, nil
}

// SecretAuth finds credentials in Argo CD repository Secrets of namespace: a `repository`
// Secret whose url equals the repository's (Argo CD's comparison), else the `repo-creds`
// Secret with the longest url prefix. Secrets are read on each call, so a rotated token
// is used at the next fetch.
func SecretAuth(kube kubernetes.Interface, namespace, knownHostsFile string) Auth {
	return func(ctx context.Context, url string) (transport.AuthMethod, error) {
		list, err := kube.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{
			LabelSelector: SecretTypeLabel + " in (" + TypeRepository + "," + TypeRepoCreds + ")"})
		if err != nil {
			return nil, fmt.Errorf("repository Secrets in %s: %w", namespace, err)
		}
		c, ok := match(list.Items, url)
		if !ok {
			return nil, nil
		}
		return c.Auth(url, knownHostsFile)
	}
}

func match(secrets []corev1.Secret, url string) (Credential, bool) {
	want := NormalizeURL(url)
	var best Credential
	bestLen := -1
	for _, s := range secrets {
		c := Credential{URL: string(s.Data["url"]), Username: string(s.Data["username"]),
			Password: string(s.Data["password"]), SSHPrivateKey: string(s.Data["sshPrivateKey"])}
		if c.URL == "" {
			continue
		}
		switch s.Labels[SecretTypeLabel] {
		case TypeRepository:
			if NormalizeURL(c.URL) == want {
				return c, true
			}
		case TypeRepoCreds:
			p := strings.ToLower(c.URL)
			if strings.HasPrefix(strings.ToLower(url), p) && len(p) > bestLen {
				best, bestLen = c, len(p)
			}
		}
	}
	return best, bestLen >= 0
}
