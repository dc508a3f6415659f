package gitsource_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/keyway-dev/keyway/internal/gitsource"
)

// gitRepo makes a repository with the git binary: main with two commits, a tag v1 on the
// first (annotated) and a branch other. It returns the path and the two commits.
func gitRepo(t *testing.T) (dir, first, second string) {
	t.Helper()
	dir = t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	write(t, filepath.Join(dir, "apps/a.yaml"), "kind: ConfigMap\n")
	run("add", ".")
	run("commit", "-q", "-m", "one")
	first = run("rev-parse", "HEAD")
	run("tag", "-a", "v1", "-m", "v1")
	write(t, filepath.Join(dir, "apps/b.yaml"), "kind: Secret\n")
	if err := os.Symlink("../../../../etc/passwd", filepath.Join(dir, "apps/link.yaml")); err != nil {
		t.Fatal(err)
	}
	run("add", ".")
	run("commit", "-q", "-m", "two")
	second = run("rev-parse", "HEAD")
	run("branch", "other", first)
	return dir, first, second
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetchLocal(t *testing.T) {
	repo, first, second := gitRepo(t)
	c, err := gitsource.New(gitsource.Options{Dir: t.TempDir(), Rewrites: []gitsource.Rewrite{{From: "https://github.com/org/", To: "file://" + filepath.Dir(repo) + "/"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url := c.Resolve("https://github.com/org/" + filepath.Base(repo))
	if url != "file://"+repo {
		t.Fatalf("rewrite: %s", url)
	}
	for rev, want := range map[string]string{"": second, "HEAD": second, "main": second, "v1": first, "other": first, first: first, second: second} {
		co, err := c.Fetch(ctx, url, rev)
		if err != nil {
			t.Fatalf("%q: %v", rev, err)
		}
		if co.Revision != want {
			t.Fatalf("%q resolved to %s, want %s", rev, co.Revision, want)
		}
		_, err = os.Stat(filepath.Join(co.Dir, "apps/b.yaml"))
		if (want == second) != (err == nil) {
			t.Fatalf("%q: apps/b.yaml present=%v at %s", rev, err == nil, want)
		}
	}
	co, _ := c.Fetch(ctx, url, "main")
	if target, err := os.Readlink(filepath.Join(co.Dir, "apps/link.yaml")); err != nil || target != "../../../../etc/passwd" {
		t.Fatalf("symlink written as %q, %v", target, err)
	}
	for _, bad := range []string{"no-such-branch", "--upload-pack=touch /tmp/x", "main:x"} {
		if _, err := c.Fetch(ctx, url, bad); err == nil {
			t.Fatalf("revision %q accepted", bad)
		}
	}
	for _, bad := range []string{"-uhello", "./relative", "file://relative", "ext::sh -c touch% /tmp/pwned"} {
		if _, err := c.Fetch(ctx, bad, "main"); err == nil {
			t.Fatalf("URL %q accepted", bad)
		}
	}
	if err := c.Prune(url, second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(co.Dir, "apps/a.yaml")); err != nil {
		t.Fatal("prune removed the kept tree")
	}
}

// TestFetchHTTP serves the repository with git's own http-backend behind basic auth; the
// client side is go-git's pure-Go http transport.
func TestFetchHTTP(t *testing.T) {
	repo, _, second := gitRepo(t)
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git-http-backend not installed")
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repo), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret-token" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "auth", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(repo)

	anon, _ := gitsource.New(gitsource.Options{Dir: t.TempDir()})
	if _, err := anon.Fetch(context.Background(), url, "main"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("anonymous fetch: %v", err)
	}
	c, _ := gitsource.New(gitsource.Options{Dir: t.TempDir(), Auth: func(context.Context, string) (transport.AuthMethod, error) {
		return &githttp.BasicAuth{Username: "ci", Password: "s3cret-token"}, nil
	}})
	co, err := c.Fetch(context.Background(), url, "main")
	if err != nil {
		t.Fatal(err)
	}
	if co.Revision != second {
		t.Fatalf("revision %s, want %s", co.Revision, second)
	}
	if b, err := os.ReadFile(filepath.Join(co.Dir, "apps/b.yaml")); err != nil || string(b) != "kind: Secret\n" {
		t.Fatalf("apps/b.yaml: %q %v", b, err)
	}
}

func TestCanonicalURL(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "https://github.com/your-org/infra-repo.git", want: "https://github.com/your-org/infra-repo.git"},
		{in: "HTTPS://GitHub.COM/your-org/Infra", want: "https://github.com/your-org/Infra"},
		{in: "https://github.com/your-org/%69nfra", want: "https://github.com/your-org/infra"},
		{in: "git@GitHub.com:org/repo.git", want: "git@github.com:org/repo.git"},
		{in: "file:///srv/git/team-a", want: "file:///srv/git/team-a"},
		{in: "https://github.com/your-org/infra-repo.git/../../other", err: "dot segment"},
		{in: "file:///srv/git/team-a/../../other-team", err: "dot segment"},
		{in: "https://github.com/your-org/infra/%2e%2e/%2E%2E/other", err: "dot segment"},
		{in: "https://github.com/your-org/infra/%252e%252e/other", err: "encoded character"},
		{in: "https://github.com/your-org/./infra", err: "dot segment"},
		{in: "git@github.com:org/../other", err: "dot segment"},
		{in: "/srv/git/a/../b", err: "dot segment"},
		{in: "https://github.com/a/b?x=../c", err: "query"},
		{in: "https://github.com/a/b#frag", err: "query"},
		{in: "https://github.com/a\\..\\b", err: "backslash"},
		{in: "https://github.com/a b", err: "space"},
		{in: "", err: "empty"},
	} {
		got, err := gitsource.CanonicalURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %q, %v; want an error saying %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestResolveIgnoresCase(t *testing.T) {
	c, err := gitsource.New(gitsource.Options{Dir: t.TempDir(), Rewrites: []gitsource.Rewrite{{From: "https://github.com/your-org/", To: "file:///srv/git/"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Resolve("HTTPS://GITHUB.COM/your-org/x"); got != "file:///srv/git/x" {
		t.Fatalf("got %q", got)
	}
}

// TestFetchBoundsObjects: a commit with a blob of zeros far over the object bound (a pack
// of a few hundred KiB) is refused while fetching, at the blob's header, before go-git
// inflates it; memory stays small; the repository's other branch still fetches.
func TestFetchBoundsObjects(t *testing.T) {
	dir := t.TempDir()
	run := func(stdin io.Reader, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Stdin = stdin
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run(nil, "init", "-q", "-b", "main")
	write(t, filepath.Join(dir, "app.yaml"), "kind: ConfigMap\n")
	run(nil, "add", ".")
	run(nil, "commit", "-q", "-m", "small")
	// 200 MiB of zeros, written as one object without a work tree file.
	blob := run(io.LimitReader(zeros{}, 200<<20), "hash-object", "-w", "--stdin")
	tree := run(strings.NewReader("100644 blob "+blob+"\tbig.yaml\n"), "mktree")
	commit := run(nil, "commit-tree", tree, "-p", "HEAD", "-m", "big")
	run(nil, "update-ref", "refs/heads/big", commit)

	c, err := gitsource.New(gitsource.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = c.Fetch(t.Context(), "file://"+dir, "big")
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "more than 67108864") {
		t.Fatalf("err = %v, want the object bound", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("the refused fetch allocated %d MiB", grew>>20)
	}
	if co, err := c.Fetch(t.Context(), "file://"+dir, "main"); err != nil || co.Revision == "" {
		t.Fatalf("main after the refusal: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestFetchSilentServer: a server that accepts connections and never answers fails the fetch
// within its deadline, over each network transport, and the repository is not left locked.
func TestFetchSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	addr := ln.Addr().String()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	c, _ := gitsource.New(gitsource.Options{Dir: t.TempDir(), Timeout: time.Second, Auth: func(_ context.Context, u string) (transport.AuthMethod, error) {
		if strings.HasPrefix(u, "ssh://") {
			return &gitssh.PublicKeys{User: "git", Signer: signer, HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{HostKeyCallback: ssh.InsecureIgnoreHostKey()}}, nil
		}
		return nil, nil
	}})
	for _, url := range []string{"http://" + addr + "/repo.git", "git://" + addr + "/repo.git", "ssh://git@" + addr + "/repo.git"} {
		for range 2 { // a second fetch of the same repository is not stuck behind the first
			start := time.Now()
			_, err := c.Fetch(context.Background(), url, "main")
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "did not finish within 1s") {
				t.Fatalf("%s: %v, want a deadline error", url, err)
			}
			if took > 5*time.Second {
				t.Fatalf("%s: the fetch took %s with a 1 s deadline", url, took)
			}
		}
	}
}

// TestTreesSwept: a written tree no fetch has used for TreeTTL goes; the one in use, and a
// recently used one, stay — the cache holds the revisions in use, not every one ever fetched.
func TestTreesSwept(t *testing.T) {
	repo, first, second := gitRepo(t)
	dir := t.TempDir()
	c, _ := gitsource.New(gitsource.Options{Dir: dir, TreeTTL: time.Minute, SweepEvery: time.Nanosecond})
	ctx := context.Background()
	url := "file://" + repo
	old, err := c.Fetch(ctx, url, first)
	if err != nil {
		t.Fatal(err)
	}
	recent, err := c.Fetch(ctx, url, second)
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(old.Dir, long, long); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(ctx, url, second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old.Dir); !os.IsNotExist(err) {
		t.Fatalf("a tree unused for 2 minutes (TTL 1m) is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(recent.Dir, "apps/b.yaml")); err != nil {
		t.Fatalf("the tree in use went: %v", err)
	}
	// Used again: fetched anew and kept, and a recently used other tree stays.
	again, err := c.Fetch(ctx, url, first)
	if err != nil || again.Dir != old.Dir {
		t.Fatalf("refetch: %v %s", err, again.Dir)
	}
	if _, err := os.Stat(recent.Dir); err != nil {
		t.Fatalf("a tree used a moment ago went: %v", err)
	}
}
