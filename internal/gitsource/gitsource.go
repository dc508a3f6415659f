// Package gitsource fetches git repositories for the daemon with go-git: one cached bare
// clone per repository, shallow fetches of the revision asked for, and each commit's tree
// written out once, read-only, for every application that renders it.
//
// The network transports (https, http, ssh, git://) are pure Go. Local repositories
// (file:// URLs and absolute paths) go through go-git's file transport, which runs the git
// binary's upload-pack: git must be installed for local repositories only. A local path is
// accepted only where the caller allows it (the operator's own Application files and
// --git-rewrite targets), never from a repository, and never one a command line could
// mistake for an option.
package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/keyway-dev/keyway/internal/parallel"
)

// Auth finds the credentials for a repository URL (nil for none).
type Auth func(ctx context.Context, url string) (transport.AuthMethod, error)

// Rewrite maps URLs starting with From onto To, as git's url.<To>.insteadOf = <From> does.
type Rewrite struct{ From, To string }

// Options configure a Cache.
type Options struct {
	// Dir holds the bare clones and the checked-out trees.
	Dir string
	// Rewrites apply to every URL before anything else; the longest matching From wins.
	Rewrites []Rewrite
	// Auth supplies credentials; nil means anonymous.
	Auth Auth
	// MaxTreeBytes bounds the files written for one commit (default 512 MiB), and a
	// fetched pack.
	MaxTreeBytes int64
	// MaxObjectBytes bounds one object of a fetched pack, inflated (default 64 MiB): a
	// blob, tree or commit, or what a delta makes.
	MaxObjectBytes int64
	// Timeout bounds the network part of one Fetch: credentials, the remote's refs and the
	// pack (default DefaultTimeout). A server that accepts and never answers fails the fetch
	// instead of holding its repository, and whoever waits on it, for ever.
	Timeout time.Duration
	// TreeTTL is how long a written tree no fetch uses is kept (default 10 minutes).
	TreeTTL time.Duration
	// SweepEvery is how often, at most, a fetch looks for a repository's unused trees
	// (default TreeTTL/10): every poll fetches, the directory need not be read each time.
	SweepEvery time.Duration
}

// DefaultTimeout is a fetch's deadline when Options.Timeout is zero (Argo CD's repo server
// gives a git command 90 s).
const DefaultTimeout = 90 * time.Second

// Cache is a set of cached repositories, safe for concurrent use.
type Cache struct {
	o     Options
	repos parallel.Keyed // per repository: one fetch at a time

	sweptMu sync.Mutex
	swept   map[string]time.Time // when each repository's trees were last swept
}

// New returns a cache keeping its data under o.Dir.
func New(o Options) (*Cache, error) {
	if o.Dir == "" {
		return nil, errors.New("gitsource: no cache directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	if o.MaxTreeBytes <= 0 {
		o.MaxTreeBytes = 512 << 20
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 64 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.TreeTTL <= 0 {
		o.TreeTTL = 10 * time.Minute
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = o.TreeTTL / 10
	}
	slices.SortStableFunc(o.Rewrites, func(a, b Rewrite) int { return len(b.From) - len(a.From) })
	return &Cache{o: o, swept: map[string]time.Time{}}, nil
}

// Resolve applies the rewrites to url. FROM matches without regard to case, as the
// allowlists compare (a host's case never matters; Argo CD compares paths that way too).
func (c *Cache) Resolve(url string) string {
	for _, r := range c.o.Rewrites {
		if len(url) >= len(r.From) && strings.EqualFold(url[:len(r.From)], r.From) {
			return r.To + url[len(r.From):]
		}
	}
	return url
}

// Rewritten reports whether a rewrite applies to url.
func (c *Cache) Rewritten(url string) bool { return c.Resolve(url) != url }

// IsLocal reports whether url names a repository on this machine's file system.
func IsLocal(url string) bool {
	return strings.HasPrefix(url, "file://") || strings.HasPrefix(url, "/") || strings.HasPrefix(url, ".")
}

// Checkout is one commit's files on disk.
type Checkout struct {
	Dir      string // the tree, read-only
	Revision string // the commit SHA
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Fetch makes the commit that revision names in the repository at url (already rewritten
// by the caller through Resolve when wanted) available on disk. Revision is a branch, a
// tag, a full commit SHA, or HEAD/"" for the remote's default branch.
func (c *Cache) Fetch(parent context.Context, url, revision string) (Checkout, error) {
	if err := CheckURL(url); err != nil {
		return Checkout{}, err
	}
	key := repoKey(url)
	defer c.repos.Lock(key)()

	ctx, cancel := context.WithTimeout(parent, c.o.Timeout)
	defer cancel()
	co, err := c.fetch(ctx, key, url, revision)
	if err != nil && parent.Err() == nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		return Checkout{}, fmt.Errorf("git fetch of %s did not finish within %s (--git-timeout): %w", Redact(url), c.o.Timeout, err)
	}
	return co, err
}

func (c *Cache) fetch(ctx context.Context, key, url, revision string) (Checkout, error) {
	var auth transport.AuthMethod
	if c.o.Auth != nil && !IsLocal(url) {
		a, err := c.o.Auth(ctx, url)
		if err != nil {
			return Checkout{}, fmt.Errorf("credentials for %s: %w", Redact(url), err)
		}
		auth = a
	}
	repo, err := c.open(key, url)
	if err != nil {
		return Checkout{}, err
	}
	hash, err := c.resolve(ctx, repo, auth, url, revision)
	if err != nil {
		return Checkout{}, err
	}
	dir := filepath.Join(c.o.Dir, key+".trees", hash.String())
	defer c.sweep(key, hash.String())
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: the sweep keeps it
		return Checkout{Dir: dir, Revision: hash.String()}, nil
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return Checkout{}, fmt.Errorf("%s at %s: %w", Redact(url), hash, err)
	}
	if err := c.writeTree(commit, dir); err != nil {
		return Checkout{}, fmt.Errorf("%s at %s: %w", Redact(url), hash, err)
	}
	return Checkout{Dir: dir, Revision: hash.String()}, nil
}

// sweep removes the repository's written trees that no fetch has used for TreeTTL, except
// current: the cache holds the revisions in use (every application's, each poll touches
// its tree), not every revision ever fetched. A render reads its tree right after its
// fetch, well within the TTL. Called with the repository's lock held.
func (c *Cache) sweep(key, current string) {
	now := time.Now()
	c.sweptMu.Lock()
	due := now.Sub(c.swept[key]) >= c.o.SweepEvery
	if due {
		c.swept[key] = now
	}
	c.sweptMu.Unlock()
	if !due {
		return
	}
	trees := filepath.Join(c.o.Dir, key+".trees")
	entries, err := os.ReadDir(trees)
	if err != nil {
		return
	}
	cutoff := now.Add(-c.o.TreeTTL)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || e.Name() == current || strings.HasPrefix(e.Name(), ".tmp-") || info.ModTime().After(cutoff) {
			continue
		}
		_ = removeTree(filepath.Join(trees, e.Name()))
	}
}

// open returns the bare clone of url, creating it on first use.
func (c *Cache) open(key, url string) (*git.Repository, error) {
	path := filepath.Join(c.o.Dir, key+".git")
	// Fetches go through boundedStorage: every pack is checked before go-git inflates it.
	var repo *git.Repository
	_, err := os.Stat(path)
	if err == nil {
		repo, err = git.Open(newBoundedStorage(path, c.o), nil)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, git.ErrRepositoryNotExists) {
		if err = os.MkdirAll(path, 0o700); err == nil {
			repo, err = git.Init(newBoundedStorage(path, c.o), nil)
		}
		if err == nil {
			_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("git cache for %s: %w", Redact(url), err)
	}
	return repo, nil
}

// resolve finds the commit revision names: from the remote's refs (one ls-remote), fetching
// it shallowly when the cache lacks it.
func (c *Cache) resolve(ctx context.Context, repo *git.Repository, auth transport.AuthMethod, url, revision string) (plumbing.Hash, error) {
	rev := strings.TrimSpace(revision)
	if rev == "" {
		rev = "HEAD"
	}
	if strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, " \t\n:^~?*[\\") {
		return plumbing.ZeroHash, fmt.Errorf("targetRevision %q: not a branch, tag or commit", revision)
	}
	remote, err := repo.Remote("origin")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if shaRE.MatchString(rev) {
		h := plumbing.NewHash(rev)
		if _, err := repo.CommitObject(h); err == nil {
			return h, nil
		}
		// A commit by SHA: fetch the branches and tags (in full: a server need not serve
		// an arbitrary SHA) and look again.
		err := remote.FetchContext(ctx, &git.FetchOptions{Auth: auth, Tags: git.AllTags, Force: true, ProxyOptions: deadlineProxy(ctx, url),
			RefSpecs: []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"}})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return plumbing.ZeroHash, fetchError(url, err)
		}
		if _, err := repo.CommitObject(h); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: commit %s is on no branch or tag of the repository", Redact(url), rev)
		}
		return h, nil
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, ProxyOptions: deadlineProxy(ctx, url)})
	if err != nil {
		return plumbing.ZeroHash, fetchError(url, err)
	}
	var ref *plumbing.Reference
	want := []plumbing.ReferenceName{plumbing.NewBranchReferenceName(rev), plumbing.NewTagReferenceName(rev), plumbing.ReferenceName(rev)}
	if rev == "HEAD" {
		want = []plumbing.ReferenceName{plumbing.HEAD}
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	for _, n := range want {
		if r, ok := byName[n]; ok {
			ref = r
			break
		}
	}
	if ref == nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: no branch or tag %q", Redact(url), rev)
	}
	if ref.Type() == plumbing.SymbolicReference { // HEAD -> refs/heads/main
		target, ok := byName[ref.Target()]
		if !ok {
			return plumbing.ZeroHash, fmt.Errorf("%s: HEAD points at %s, which it does not list", Redact(url), ref.Target())
		}
		ref = target
	}
	hash := ref.Hash()
	if _, err := repo.CommitObject(hash); err == nil {
		return peel(repo, hash)
	}
	local := "refs/keyway/" + strings.TrimPrefix(ref.Name().String(), "refs/")
	err = remote.FetchContext(ctx, &git.FetchOptions{Auth: auth, Depth: 1, Force: true, Tags: git.NoTags, ProxyOptions: deadlineProxy(ctx, url),
		RefSpecs: []config.RefSpec{config.RefSpec("+" + ref.Name().String() + ":" + local)}})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, fetchError(url, err)
	}
	return peel(repo, hash)
}

// peel turns an annotated tag into its commit.
func peel(repo *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	if tag, err := repo.TagObject(h); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		return c.Hash, nil
	}
	return h, nil
}

// writeTree writes the commit's files to dir (through a temporary sibling, renamed when
// complete, so a half-written tree is never used).
func (c *Cache) writeTree(commit *object.Commit, dir string) error {
	tree, err := commit.Tree()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	var total int64
	err = tree.Files().ForEach(func(f *object.File) error {
		if f.Mode == filemode.Submodule {
			return nil
		}
		total += f.Size
		if total > c.o.MaxTreeBytes {
			return fmt.Errorf("the commit's files exceed %d bytes", c.o.MaxTreeBytes)
		}
		name := filepath.FromSlash(f.Name)
		if err := root.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			return err
		}
		if f.Mode == filemode.Symlink {
			target, err := f.Contents()
			if err != nil {
				return err
			}
			// Written as it is: the renderer reads through an os.Root, so a link cannot
			// lead outside the checkout.
			return root.Symlink(target, name)
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		perm := os.FileMode(0o400)
		if f.Mode == filemode.Executable {
			perm = 0o500
		}
		w, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// Prune removes the written trees of url's repository other than keep.
func (c *Cache) Prune(url string, keep ...string) error {
	trees := filepath.Join(c.o.Dir, repoKey(url)+".trees")
	entries, err := os.ReadDir(trees)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) && !strings.HasPrefix(e.Name(), ".tmp-") {
			if err := removeTree(filepath.Join(trees, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeTree deletes a read-only tree.
func removeTree(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// CheckURL refuses a URL that no transport should see: empty, with control characters,
// or one a command line could take for an option.
func CheckURL(url string) error {
	switch {
	case url == "":
		return errors.New("empty repository URL")
	case strings.HasPrefix(url, "-"):
		return fmt.Errorf("repository URL %q: may not start with '-'", url)
	case strings.ContainsFunc(url, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("repository URL holds control characters")
	case strings.HasPrefix(url, "file://") && !strings.HasPrefix(strings.TrimPrefix(url, "file://"), "/"):
		return fmt.Errorf("repository URL %q: a file:// URL needs an absolute path", url)
	case strings.HasPrefix(url, "."):
		return fmt.Errorf("repository URL %q: a local repository needs an absolute path", url)
	case strings.HasPrefix(url, "ext::") || strings.Contains(url, "::"):
		return fmt.Errorf("repository URL %q: git remote helpers are not supported", Redact(url))
	}
	return nil
}

// Redact hides a password in a URL's user information.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok || strings.Contains(userinfo, "/") {
		return url
	}
	if user, _, hasPw := strings.Cut(userinfo, ":"); hasPw {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return url
}

// repoKey names a repository's cache entries.
func repoKey(url string) string {
	sum := sha256.Sum256([]byte(NormalizeURL(url)))
	return hex.EncodeToString(sum[:12])
}

// NormalizeURL is url as Argo CD compares repository URLs: lower case, without a trailing
// slash or .git.
func NormalizeURL(url string) string {
	u := strings.ToLower(strings.TrimSpace(url))
	u = strings.TrimSuffix(u, "/")
	return strings.TrimSuffix(u, ".git")
}

func fetchError(url string, err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s: the repository refused the credentials (or needs some): %w", Redact(url), err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s: repository not found", Redact(url))
	}
	return fmt.Errorf("%s: %w", Redact(url), err)
}

// CanonicalURL is the one form of a repository URL that allowlists, project globs and
// rewrites compare: scheme and host in lower case, the path percent-decoded. A URL that
// could mean another repository once a server or a rewrite reads it is refused: dot
// segments ("." or ".."), a '%' or '\' left after decoding, a query or fragment, control
// characters or spaces. scp-like "user@host:path" keeps its form, with the same checks.
func CanonicalURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("repository URL %q %s", Redact(s), why)
	}
	if s == "" {
		return bad("is empty")
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return bad("holds a space, a control character or a backslash")
		}
	}
	checkPath := func(p string) error {
		if strings.ContainsAny(p, "%\\") {
			return errors.New("holds an encoded character after decoding")
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return errors.New("holds a dot segment ('.' or '..')")
			}
		}
		return nil
	}
	if !strings.Contains(s, "://") {
		if IsLocal(s) || strings.HasPrefix(s, "/") {
			if err := checkPath(s); err != nil {
				return bad(err.Error())
			}
			return s, nil
		}
		// scp-like: [user@]host:path
		hostPart, p, ok := strings.Cut(s, ":")
		if !ok || hostPart == "" || strings.Contains(hostPart, "/") {
			return bad("is neither a URL nor user@host:path")
		}
		if err := checkPath(p); err != nil {
			return bad(err.Error())
		}
		user, host, hasUser := strings.Cut(hostPart, "@")
		if !hasUser {
			return strings.ToLower(hostPart) + ":" + p, nil
		}
		return user + "@" + strings.ToLower(host) + ":" + p, nil
	}
	u, err := neturl.Parse(s)
	if err != nil {
		return bad("does not parse")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(s, "#") {
		return bad("has a query or a fragment")
	}
	if u.Opaque != "" {
		return bad("is not hierarchical")
	}
	if err := checkPath(u.Path); err != nil {
		return bad(err.Error())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.RawPath = ""
	return u.String(), nil
}
