package gitsource

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// boundedStorage is a bare repository's storage whose fetches are checked before go-git
// indexes them: a pack arrives in a file of its own, at most maxPack bytes, and is read
// through once — every object's size from its header, every delta's target size, and
// what each inflates to — before go-git, which inflates a whole object in memory to hash
// it, sees it. A 1.46 MiB pack holding a 1.5 GiB blob is refused at that blob's header.
type boundedStorage struct {
	*filesystem.Storage
	dir                         string // where incoming packs wait
	maxObject, maxPack, maxData int64
}

func newBoundedStorage(path string, o Options) *boundedStorage {
	st := filesystem.NewStorage(osfs.New(path), cache.NewObjectLRUDefault())
	return &boundedStorage{Storage: st, dir: path, maxObject: o.MaxObjectBytes, maxPack: o.MaxTreeBytes, maxData: 16 * o.MaxTreeBytes}
}

// PackfileWriter implements storer.PackfileWriter.
func (s *boundedStorage) PackfileWriter() (io.WriteCloser, error) {
	f, err := os.CreateTemp(s.dir, "incoming-*.pack")
	if err != nil {
		return nil, err
	}
	return &checkedPack{s: s, f: f}, nil
}

type checkedPack struct {
	s *boundedStorage
	f *os.File
	n int64
}

func (p *checkedPack) Write(b []byte) (int, error) {
	if p.n += int64(len(b)); p.n > p.s.maxPack {
		return 0, fmt.Errorf("the fetched pack is larger than %d bytes", p.s.maxPack)
	}
	return p.f.Write(b)
}

// Close checks the whole pack, then hands it to go-git's own writer.
func (p *checkedPack) Close() (err error) {
	defer os.Remove(p.f.Name())
	defer p.f.Close()
	if p.n == 0 || p.n > p.s.maxPack {
		return nil
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := checkPack(bufio.NewReader(p.f), p.s.maxObject, p.s.maxData); err != nil {
		return fmt.Errorf("the fetched pack: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w, err := p.s.Storage.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, p.f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Pack object types (gitformat-pack).
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

// checkPack reads a pack stream through: "PACK", version, object count, then each object's
// header (type and inflated size), a delta's base reference, and its zlib stream, inflated
// to nothing while counting. An object (or a delta's result) over maxObject, one that
// inflates to more than its header says, or more than maxData in all is refused; memory
// stays constant whatever the pack holds.
func checkPack(r *bufio.Reader, maxObject, maxData int64) error {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || string(head[:4]) != "PACK" {
		return errors.New("not a pack")
	}
	count := binary.BigEndian.Uint32(head[8:])
	var total int64
	for i := range count {
		b, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		typ := (b >> 4) & 7
		size := int64(b & 15)
		for shift := uint(4); b&0x80 != 0; shift += 7 {
			if shift > 56 {
				return fmt.Errorf("object %d: a size header too long", i)
			}
			if b, err = r.ReadByte(); err != nil {
				return fmt.Errorf("object %d: %w", i, err)
			}
			size |= int64(b&0x7f) << shift
		}
		switch typ {
		case objCommit, objTree, objBlob, objTag:
			if size > maxObject {
				return fmt.Errorf("object %d is %d bytes, more than %d", i, size, maxObject)
			}
		case objOfsDelta:
			for {
				if b, err = r.ReadByte(); err != nil {
					return fmt.Errorf("object %d: %w", i, err)
				}
				if b&0x80 == 0 {
					break
				}
			}
		case objRefDelta:
			if _, err := r.Discard(20); err != nil {
				return fmt.Errorf("object %d: %w", i, err)
			}
		default:
			return fmt.Errorf("object %d has type %d", i, typ)
		}
		if size > maxObject {
			return fmt.Errorf("object %d's delta is %d bytes, more than %d", i, size, maxObject)
		}
		zr, err := zlib.NewReader(r)
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		lr := &io.LimitedReader{R: zr, N: size + 1}
		data := bufio.NewReader(lr)
		if typ == objOfsDelta || typ == objRefDelta {
			if _, err := readVarint(data); err != nil { // the base's size
				return fmt.Errorf("object %d: %w", i, err)
			}
			target, err := readVarint(data)
			if err != nil {
				return fmt.Errorf("object %d: %w", i, err)
			}
			if target > maxObject {
				return fmt.Errorf("object %d makes %d bytes, more than %d", i, target, maxObject)
			}
			total += target
		}
		if _, err := io.Copy(io.Discard, data); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		if lr.N == 0 { // more than size+1 bytes were there to read
			return fmt.Errorf("object %d inflates to more than its %d bytes", i, size)
		}
		if err := zr.Close(); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		if total += size; total > maxData {
			return fmt.Errorf("its objects inflate to more than %d bytes", maxData)
		}
	}
	return nil
}

// readVarint reads a delta header's little-endian base-128 size.
func readVarint(r io.ByteReader) (int64, error) {
	var v int64
	for shift := uint(0); ; shift += 7 {
		if shift > 56 {
			return 0, errors.New("a delta size too long")
		}
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= int64(b&0x7f) << shift
		if b&0x80 == 0 {
			return v, nil
		}
	}
}
