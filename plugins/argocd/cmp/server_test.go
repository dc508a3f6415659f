package cmp

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// The repo-server's side of the protocol, for these narrow tests (the end-to-end test in
// cmd/keyway uses Argo CD's own client).

type sendMetadata metadata

func (m sendMetadata) marshal() []byte {
	var md []byte
	md = appendString(md, 1, m.AppName)
	md = appendString(md, 2, m.AppRelPath)
	md = appendString(md, 3, m.Checksum)
	md = protowire.AppendTag(md, 4, protowire.VarintType)
	md = protowire.AppendVarint(md, uint64(m.Size))
	for _, kv := range m.Env {
		k, v, _ := strings.Cut(kv, "=")
		md = protowire.AppendTag(md, 5, protowire.BytesType)
		md = protowire.AppendBytes(md, appendString(appendString(nil, 1, k), 2, v))
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), md)
}

type sendChunk []byte

func (c sendChunk) marshal() []byte {
	f := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), c)
	return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), f)
}

type gotManifests struct{ list []string }

func (g *gotManifests) unmarshal(b []byte) error {
	return fields(b, func(num protowire.Number, _ protowire.Type, v []byte) error {
		if num == 1 {
			g.list = append(g.list, string(v))
		}
		return nil
	})
}

// fakeHandler answers generate with the application's files and environment.
type fakeHandler struct {
	mu    sync.Mutex
	roots []string
	err   error
}

func (h *fakeHandler) Generate(_ context.Context, app App) ([]string, error) {
	h.mu.Lock()
	h.roots = append(h.roots, app.Root)
	h.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	var out []string
	err := filepath.WalkDir(app.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(app.Dir, p)
			out = append(out, rel+"="+string(data))
		}
		return err
	})
	return append(out, app.Env...), err
}

func (*fakeHandler) Discover(context.Context, App) (bool, error) { return true, nil }
func (*fakeHandler) Parameters(context.Context, App) ([]Announcement, error) {
	return []Announcement{{Name: "values-files", CollectionType: "array"}}, nil
}

type entry struct {
	name, body, link string
	typ              byte
}

func makeTgz(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func serve(t *testing.T, h Handler, o Options) *grpc.ClientConn {
	t.Helper()
	if o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	sock := filepath.Join(t.TempDir(), "p.sock")
	ctx, cancel := context.WithCancel(context.Background())
	srv := New(h, o)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, sock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no socket")
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// generate sends a request as the repo-server does; tweak may change the metadata.
func generate(t *testing.T, conn *grpc.ClientConn, tgz []byte, appRel string, tweak func(*sendMetadata)) ([]string, error) {
	t.Helper()
	st, err := conn.NewStream(t.Context(), &grpc.StreamDesc{ClientStreams: true}, "/plugin.ConfigManagementPluginService/GenerateManifest")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tgz)
	md := sendMetadata{AppName: filepath.Base(appRel), AppRelPath: appRel, Checksum: hex.EncodeToString(sum[:]), Size: int64(len(tgz)), Env: []string{"ARGOCD_APP_NAME=shop"}}
	if tweak != nil {
		tweak(&md)
	}
	if err := st.SendMsg(md); err != nil {
		t.Fatal(err)
	}
	for len(tgz) > 0 {
		n := min(len(tgz), 1000)
		if err := st.SendMsg(sendChunk(tgz[:n])); err != nil {
			break // the server may refuse before the end
		}
		tgz = tgz[n:]
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got gotManifests
	err = st.RecvMsg(&got)
	return got.list, err
}

func TestGenerate(t *testing.T) {
	h := &fakeHandler{}
	work := t.TempDir()
	conn := serve(t, h, Options{WorkDir: work})
	tgz := makeTgz(t,
		entry{name: "apps/", typ: tar.TypeDir},
		entry{name: "apps/shop/a.yaml", body: "kind: A"},
		entry{name: "./apps/shop/sub/b.yaml", body: "kind: B"},
		entry{name: "apps/shop/link.yaml", typ: tar.TypeSymlink, link: "a.yaml"},
		entry{name: "other.yaml", body: "kind: C"},
	)
	got, err := generate(t, conn, tgz, "apps/shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.yaml=kind: A", "link.yaml=kind: A", "sub/b.yaml=kind: B", "ARGOCD_APP_NAME=shop"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The same content again is served from the kept copy.
	if _, err := generate(t, conn, tgz, "apps/shop", nil); err != nil {
		t.Fatal(err)
	}
	if len(h.roots) != 2 || h.roots[0] != h.roots[1] {
		t.Errorf("the repository was unpacked twice: %q", h.roots)
	}
}

func TestRefused(t *testing.T) {
	good := makeTgz(t, entry{name: "app/a.yaml", body: "kind: A"})
	for _, tc := range []struct {
		name   string
		tgz    []byte
		app    string
		tweak  func(*sendMetadata)
		reason string
	}{
		{"checksum", good, "app", func(m *sendMetadata) { m.Checksum = strings.Repeat("0", 64) }, "checksum"},
		{"longer than announced", good, "app", func(m *sendMetadata) { m.Size-- }, "longer than"},
		{"shorter than announced", good, "app", func(m *sendMetadata) { m.Size++ }, "were announced"},
		{"too large", good, "app", func(m *sendMetadata) { m.Size = 1 << 40 }, "at most"},
		{"app path leaves", good, "../app", nil, "leaves the repository"},
		{"entry leaves", makeTgz(t, entry{name: "../evil", body: "x"}), ".", nil, "leaves the repository"},
		{"absolute entry", makeTgz(t, entry{name: "/etc/evil", body: "x"}), ".", nil, "leaves the repository"},
		{"link leaves", makeTgz(t, entry{name: "app/l", typ: tar.TypeSymlink, link: "../../etc/passwd"}), "app", nil, "points outside"},
		{"absolute link", makeTgz(t, entry{name: "app/l", typ: tar.TypeSymlink, link: "/etc/passwd"}), "app", nil, "points outside"},
		{"write through a link", makeTgz(t, entry{name: "d", typ: tar.TypeSymlink, link: "."}, entry{name: "d/../../x", body: "x"}), ".", nil, "leaves the repository"},
		{"link chain leaves", makeTgz(t, entry{name: "d/up", typ: tar.TypeSymlink, link: ".."}, entry{name: "esc", typ: tar.TypeSymlink, link: "d/up/.."}), ".", nil, "leads outside"},
		{"link chain leaves, target first", makeTgz(t, entry{name: "esc", typ: tar.TypeSymlink, link: "d/up/../x"}, entry{name: "d/up", typ: tar.TypeSymlink, link: ".."}), ".", nil, "leads outside"},
		{"too many entries", makeTgz(t, entry{name: "a", body: "1"}, entry{name: "b", body: "2"}, entry{name: "c", body: "3"}), ".", nil, "more than 2 entries"},
		{"not gzip", []byte("not a tarball"), ".", nil, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			conn := serve(t, &fakeHandler{}, Options{WorkDir: work, MaxFiles: 2})
			_, err := generate(t, conn, tc.tgz, tc.app, tc.tweak)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want InvalidArgument mentioning %q", err, tc.reason)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("a refused request left %d entries in the work directory", len(left))
			}
		})
	}
}

func TestHandlerError(t *testing.T) {
	conn := serve(t, &fakeHandler{err: errors.New("render failed: 2 unresolved references")}, Options{})
	_, err := generate(t, conn, makeTgz(t, entry{name: "a.yaml", body: "x"}), ".", nil)
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "2 unresolved references") {
		t.Fatalf("err = %v", err)
	}
}

// TestEviction: beyond KeepRepos, the least recently used repository is removed once no
// request uses it; with none kept, nothing stays.
func TestEviction(t *testing.T) {
	for _, keep := range []int{1, -1} {
		work := t.TempDir()
		conn := serve(t, &fakeHandler{}, Options{WorkDir: work, KeepRepos: keep})
		for _, body := range []string{"one", "two", "three"} {
			if _, err := generate(t, conn, makeTgz(t, entry{name: "a.yaml", body: body}), ".", nil); err != nil {
				t.Fatal(err)
			}
		}
		left, _ := os.ReadDir(work)
		if want := max(keep, 0); len(left) != want {
			t.Errorf("keep %d: %d repositories left, want %d", keep, len(left), want)
		}
	}
}

// FuzzUnpack: whatever tar a client sends, unpacking either fails or writes only inside its
// directory, and never panics.
func FuzzUnpack(f *testing.F) {
	for _, entries := range [][]entry{
		{{name: "a/b.yaml", body: "x"}},
		{{name: "../x", body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "../.."}, {name: "l/x", body: "x"}},
		{{name: "d", typ: tar.TypeDir}, {name: "d/l", typ: tar.TypeSymlink, link: "."}, {name: "d/l/l/f", body: "y"}},
	} {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
			if h.Typeflag == 0 {
				h.Typeflag = tar.TypeReg
			}
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
			}
			tw.WriteHeader(h)
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		f.Add(raw.Bytes())
	}
	s := &Server{o: Options{MaxFiles: 100, MaxRepoBytes: 1 << 20}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		parent := t.TempDir()
		_ = s.unpack(bytes.NewReader(gz.Bytes()), filepath.Join(parent, "repo"))
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "repo" {
				t.Fatalf("unpacking wrote %q beside its directory", e.Name())
			}
		}
	})
}

// FuzzUnpackLinks builds repositories of links between a few names (each byte pair picks a
// link's name and target, ".." and nested paths included) and checks the unpacked tree: no
// link, followed through the others, resolves outside the repository.
func FuzzUnpackLinks(f *testing.F) {
	f.Add([]byte{1, 0, 6, 3})
	f.Add([]byte{6, 3, 1, 0})
	f.Add([]byte{2, 4, 5, 2, 7, 1})
	names := []string{"a", "d/up", "d/e/l", "esc", "x/y", "d/e/l/..", "z", "d/e"}
	targets := []string{"..", ".", "../..", "d/up/..", "up/../..", "e/l/../..", "a/x", "d/e/l"}
	s := &Server{o: Options{MaxFiles: 100, MaxRepoBytes: 1 << 20}}
	f.Fuzz(func(t *testing.T, picks []byte) {
		if len(picks) > 16 {
			return
		}
		var entries []entry
		for i := 0; i+1 < len(picks); i += 2 {
			entries = append(entries, entry{name: names[int(picks[i])%len(names)], typ: tar.TypeSymlink, link: targets[int(picks[i+1])%len(targets)]})
		}
		entries = append(entries, entry{name: "f", body: "inside"})
		parent := t.TempDir()
		dir := filepath.Join(parent, "repo")
		if err := s.unpack(bytes.NewReader(makeTgz(t, entries...)), dir); err != nil {
			return
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			to, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // leads nowhere
			}
			if rel, _ := filepath.Rel(real, to); rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("link %s resolves to %s, outside the repository (entries %+v)", p, to, entries)
			}
			return nil
		})
	})
}

// FuzzStreamRequest: any bytes decode to a request or an error, never a panic.
func FuzzStreamRequest(f *testing.F) {
	f.Add(sendMetadata{AppName: "a", AppRelPath: "x", Checksum: "c", Size: 3, Env: []string{"K=V"}}.marshal())
	f.Add(sendChunk("abc").marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		var r streamRequest
		_ = r.unmarshal(b)
	})
}
