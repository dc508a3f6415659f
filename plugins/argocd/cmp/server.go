// Package cmp serves Argo CD's Config Management Plugin protocol on a Unix socket, the
// protocol Argo CD's repo-server speaks to argocd-cmp-server. With keyway serving it, a
// sidecar renders in one long-lived process instead of starting a new one for every
// application refresh.
//
// Each request carries the application's repository as a gzipped tar stream (verified
// against its SHA-256 and size, unpacked under a fresh directory with no path, link or size
// allowed to leave it) and Argo CD's environment; a Handler renders it.
package cmp

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// App is one request's application, unpacked.
type App struct {
	Name string   // the application path's last element (Argo CD's appName)
	Root string   // the repository checkout
	Dir  string   // the application path inside Root
	Env  []string // Argo CD's environment for the request (ARGOCD_APP_*, ARGOCD_ENV_*, …)
}

// Handler does the plugin's work. Errors are shown to Argo CD users as they are, so they
// must never hold a secret value.
type Handler interface {
	// Generate renders the application; each manifest is one JSON object.
	Generate(ctx context.Context, app App) ([]string, error)
	// Discover reports whether the plugin claims the application.
	Discover(ctx context.Context, app App) (bool, error)
	// Parameters announces the parameters the application may set.
	Parameters(ctx context.Context, app App) ([]Announcement, error)
}

// Options configure a Server.
type Options struct {
	// WorkDir holds the unpacked repositories, one fresh directory per request; default
	// the system temporary directory.
	WorkDir string
	// MaxRepoBytes bounds a repository, compressed and unpacked; default 1 GiB.
	MaxRepoBytes int64
	// MaxFiles bounds the entries of a repository; default 100,000.
	MaxFiles int
	// KeepRepos is how many unpacked repositories are kept for reuse, keyed by the checksum
	// of what the repo-server sent; default 8. Argo CD sends the same repository again for
	// every refresh of every application in it until its revision changes, so most requests
	// unpack nothing. Negative keeps none.
	KeepRepos int
	Logger    *slog.Logger
}

// Server answers Argo CD's repo-server.
type Server struct {
	h    Handler
	o    Options
	grpc *grpc.Server

	mu    sync.Mutex
	repos map[string]*repo // unpacked repositories by checksum
	clock int64            // use counter for least-recently-used eviction
}

// repo is an unpacked repository, shared read-only by the requests that use it.
type repo struct {
	dir   string        // holds "repo/", the checkout
	ready chan struct{} // closed once unpacked (or failed)
	err   error
	users int   // requests using it now
	used  int64 // clock of its last use
	gone  bool  // evicted: remove when the last user is done
}

// New returns a server for h.
func New(h Handler, o Options) *Server {
	if o.MaxRepoBytes <= 0 {
		o.MaxRepoBytes = 1 << 30
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 100_000
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KeepRepos == 0 {
		o.KeepRepos = 8
	}
	s := &Server{h: h, o: o, repos: map[string]*repo{}}
	s.grpc = grpc.NewServer(grpc.ForceServerCodec(codec{}), grpc.MaxRecvMsgSize(100<<20), grpc.MaxSendMsgSize(100<<20))
	s.grpc.RegisterService(&serviceDesc, s)
	return s
}

// Serve listens on the Unix socket at socket (replacing a stale one) until ctx ends.
func (s *Server) Serve(ctx context.Context, socket string) error {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("socket %s: %w", socket, err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", socket)
	if err != nil {
		return err
	}
	defer os.Remove(socket)
	defer s.Close()
	go func() {
		<-ctx.Done()
		s.grpc.GracefulStop()
	}()
	s.o.Logger.Info("serving Argo CD's config management plugin protocol", "socket", socket)
	if err := s.grpc.Serve(l); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// service is the handler type gRPC checks a registered implementation against.
type service interface {
	receive(grpc.ServerStream) (App, func(), error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "plugin.ConfigManagementPluginService",
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "CheckPluginConfiguration",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(&empty{}); err != nil {
				return nil, err
			}
			return &checkResponse{DiscoveryConfigured: true}, nil
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "GenerateManifest", ClientStreams: true, Handler: func(srv any, st grpc.ServerStream) error {
			return srv.(*Server).handle(st, func(ctx context.Context, app App) (marshaler, error) {
				m, err := srv.(*Server).h.Generate(ctx, app)
				return &manifestResponse{Manifests: m}, err
			})
		}},
		{StreamName: "MatchRepository", ClientStreams: true, Handler: func(srv any, st grpc.ServerStream) error {
			return srv.(*Server).handle(st, func(ctx context.Context, app App) (marshaler, error) {
				ok, err := srv.(*Server).h.Discover(ctx, app)
				return &repositoryResponse{Supported: ok, DiscoveryEnabled: true}, err
			})
		}},
		{StreamName: "GetParametersAnnouncement", ClientStreams: true, Handler: func(srv any, st grpc.ServerStream) error {
			return srv.(*Server).handle(st, func(ctx context.Context, app App) (marshaler, error) {
				a, err := srv.(*Server).h.Parameters(ctx, app)
				return &parametersResponse{Announcements: a}, err
			})
		}},
	},
	Metadata: "plugin.proto",
}

// handle unpacks the request's repository, runs do on it and answers.
func (s *Server) handle(st grpc.ServerStream, do func(context.Context, App) (marshaler, error)) error {
	app, cleanup, err := s.receive(st)
	if err != nil {
		s.o.Logger.Warn("request refused", "err", err)
		return status.Error(codes.InvalidArgument, err.Error())
	}
	defer cleanup()
	resp, err := do(st.Context(), app)
	if err != nil {
		return status.Error(codes.Unknown, err.Error())
	}
	return st.SendMsg(resp)
}

// receive reads the metadata and the repository tarball of a request and returns the
// unpacked repository, from the cache when the same content was unpacked before; release
// must be called when the request is done with it.
func (s *Server) receive(st grpc.ServerStream) (App, func(), error) {
	var first streamRequest
	if err := st.RecvMsg(&first); err != nil {
		return App{}, nil, err
	}
	md := first.Metadata
	if md == nil {
		return App{}, nil, errNoMetadata
	}
	if md.Size < 0 || md.Size > s.o.MaxRepoBytes {
		return App{}, nil, fmt.Errorf("the repository is %d bytes compressed; at most %d are accepted", md.Size, s.o.MaxRepoBytes)
	}
	rel := path.Clean(filepath.ToSlash(md.AppRelPath))
	if rel == ".." || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
		return App{}, nil, fmt.Errorf("application path %q leaves the repository", md.AppRelPath)
	}
	tgz, err := s.readTarball(st, md)
	if err != nil {
		return App{}, nil, err
	}
	defer tgz.Close()
	r, release, err := s.repo(md.Checksum, tgz)
	if err != nil {
		return App{}, nil, err
	}
	root := filepath.Join(r.dir, "repo")
	return App{Name: md.AppName, Root: root, Dir: filepath.Join(root, filepath.FromSlash(rel)), Env: md.Env}, release, nil
}

// tarball is a received repository: in memory when small, else in a temporary file.
type tarball struct {
	io.ReadSeeker
	file *os.File
}

func (t *tarball) Close() {
	if t.file != nil {
		t.file.Close()
		os.Remove(t.file.Name())
	}
}

// readTarball receives the chunks that follow the metadata and checks their length and
// SHA-256 against it.
func (s *Server) readTarball(st grpc.ServerStream, md *metadata) (*tarball, error) {
	t := &tarball{}
	var w io.Writer
	var mem bytes.Buffer
	if md.Size <= 32<<20 {
		mem.Grow(int(md.Size))
		w = &mem
	} else {
		f, err := os.CreateTemp(s.o.WorkDir, "keyway-cmp-*.tgz")
		if err != nil {
			return nil, err
		}
		t.file, w = f, f
	}
	hash := sha256.New()
	var got int64
	for {
		var req streamRequest
		err := st.RecvMsg(&req)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Close()
			return nil, err
		}
		if !req.HasChunk {
			t.Close()
			return nil, errors.New("metadata sent twice")
		}
		if got += int64(len(req.Chunk)); got > md.Size {
			t.Close()
			return nil, fmt.Errorf("the repository stream is longer than the %d bytes announced", md.Size)
		}
		hash.Write(req.Chunk)
		if _, err := w.Write(req.Chunk); err != nil {
			t.Close()
			return nil, err
		}
	}
	if got != md.Size {
		t.Close()
		return nil, fmt.Errorf("the repository stream is %d bytes, %d were announced", got, md.Size)
	}
	if sum := hex.EncodeToString(hash.Sum(nil)); sum != md.Checksum {
		t.Close()
		return nil, fmt.Errorf("the repository's checksum %s does not match the announced %q", sum, md.Checksum)
	}
	if t.file != nil {
		if _, err := t.file.Seek(0, io.SeekStart); err != nil {
			t.Close()
			return nil, err
		}
		t.ReadSeeker = t.file
	} else {
		t.ReadSeeker = bytes.NewReader(mem.Bytes())
	}
	return t, nil
}

// repo returns the repository unpacked from tgz, whose checksum is sum, unpacking it unless
// a kept copy exists or another request is unpacking it now.
func (s *Server) repo(sum string, tgz io.Reader) (*repo, func(), error) {
	s.mu.Lock()
	r, ok := s.repos[sum]
	if !ok {
		r = &repo{ready: make(chan struct{})}
		if s.o.KeepRepos > 0 {
			s.repos[sum] = r
		}
	}
	r.users++
	s.clock++
	r.used = s.clock
	s.mu.Unlock()
	if !ok {
		r.err = s.unpackRepo(r, tgz)
		close(r.ready)
	}
	<-r.ready
	release := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		r.users--
		if r.err != nil || s.o.KeepRepos <= 0 {
			r.gone = true
			if s.repos[sum] == r {
				delete(s.repos, sum)
			}
		}
		s.evict()
		if r.gone && r.users == 0 && r.dir != "" {
			os.RemoveAll(r.dir)
			r.dir = ""
		}
	}
	if r.err != nil {
		release()
		return nil, nil, fmt.Errorf("unpacking the repository: %w", r.err)
	}
	return r, release, nil
}

func (s *Server) unpackRepo(r *repo, tgz io.Reader) error {
	dir, err := os.MkdirTemp(s.o.WorkDir, "keyway-cmp-")
	if err != nil {
		return err
	}
	r.dir = dir
	return s.unpack(tgz, filepath.Join(dir, "repo"))
}

// evict drops the least recently used kept repositories beyond KeepRepos; one still in use is
// removed when its last request is done. Called with s.mu held.
func (s *Server) evict() {
	for len(s.repos) > max(s.o.KeepRepos, 0) {
		var oldest string
		for k, r := range s.repos {
			if oldest == "" || r.used < s.repos[oldest].used {
				oldest = k
			}
		}
		r := s.repos[oldest]
		delete(s.repos, oldest)
		r.gone = true
		if r.users == 0 && r.dir != "" {
			os.RemoveAll(r.dir)
			r.dir = ""
		}
	}
}

// Close removes the kept repositories.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.repos {
		delete(s.repos, k)
		r.gone = true
		if r.users == 0 && r.dir != "" {
			os.RemoveAll(r.dir)
		}
	}
}

// unpack extracts a gzipped tar into dir: directories, regular files and symbolic links
// whose targets stay inside dir; no entry may be written through a link or outside dir.
func (s *Server) unpack(r io.Reader, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var total int64
	var links []string
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return checkLinks(root, links)
		}
		if err != nil {
			return err
		}
		if n >= s.o.MaxFiles {
			return fmt.Errorf("more than %d entries", s.o.MaxFiles)
		}
		name := path.Clean(strings.TrimPrefix(filepath.ToSlash(h.Name), "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q leaves the repository", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			if total += h.Size; total > s.o.MaxRepoBytes {
				return fmt.Errorf("the repository unpacks to more than %d bytes", s.o.MaxRepoBytes)
			}
			err = writeFile(root, name, tr, h)
		case tar.TypeSymlink:
			target := path.Clean(path.Join(path.Dir(name), filepath.ToSlash(h.Linkname)))
			if path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../") {
				return fmt.Errorf("link %q points outside the repository", h.Name)
			}
			if err = root.MkdirAll(path.Dir(name), 0o755); err == nil {
				err = root.Symlink(h.Linkname, name)
				links = append(links, name)
			}
		default:
			continue // devices, fifos, hard links: not part of a repository
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
}

// checkLinks refuses a repository in which any link, followed through the links around
// it once everything is unpacked, leads outside: each entry's own target may look inside
// (dir/up/.. where dir/up links to ..) and still leave through another link. The root
// resolves every link on the way and refuses a path that escapes it; a link to nothing
// inside is harmless.
func checkLinks(root *os.Root, links []string) error {
	for _, l := range links {
		if _, err := root.Stat(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("link %q leads outside the repository", l)
		}
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, h *tar.Header) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, h.Size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
