package main

import (
	"bufio"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyway-dev/keyway/sealing"
)

// publicKeys loads every --cert; without one (and when sealing), the controller's.
func (o *sealOptions) publicKeys(ctx context.Context) ([]*rsa.PublicKey, error) {
	var pubs []*rsa.PublicKey
	if !o.Validate && !o.RecoveryUnseal && len(o.Certs) == 0 {
		c, err := o.controller()
		var cert []byte
		if err == nil {
			cert, err = c.Cert(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("no --cert given and the controller's certificate could not be fetched: %w", err)
		}
		pub, err := sealing.ParseCert(cert, time.Now())
		if err != nil {
			return nil, fmt.Errorf("the controller's certificate: %w", err)
		}
		pubs = append(pubs, pub)
	}
	for _, c := range o.Certs {
		pub, err := loadCert(ctx, c)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
	}
	return pubs, nil
}

func (o *sealOptions) privateKeys() ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	for _, p := range o.PrivateKeys {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--recovery-private-key: %w", err)
		}
		ks, err := sealing.ParsePrivateKeys(data)
		if err != nil {
			return nil, fmt.Errorf("--recovery-private-key %s: %w", p, err)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

// loadCert is sealing.LoadCert with flag-level errors: a plain-http URL is a usage error.
func loadCert(ctx context.Context, ref string) (*rsa.PublicKey, error) {
	pub, err := sealing.LoadCert(ctx, ref)
	switch {
	case errors.Is(err, sealing.ErrInsecureCertURL):
		return nil, usagef("--cert %s: %v", ref, err)
	case err != nil:
		return nil, fmt.Errorf("--cert %s: %w", ref, err)
	}
	return pub, nil
}

func (o *sealOptions) input(a *app) ([]byte, string, error) {
	if o.Raw && o.FromFile != "" {
		data, err := os.ReadFile(o.FromFile)
		return data, o.FromFile, err
	}
	if o.File != "" {
		data, err := os.ReadFile(o.File)
		return data, o.File, err
	}
	data, err := io.ReadAll(io.LimitReader(a.in, 64<<20))
	return data, "<stdin>", err
}

// emit writes to -w atomically (temp file, then rename) or to stdout.
func (o *sealOptions) emit(a *app, data []byte) error {
	if o.Write == "" {
		_, err := a.out.Write(data)
		return err
	}
	return writeAtomic(o.Write, data)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyway-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// open returns the input as a stream: -f's file or stdin.
func (o *sealOptions) open(a *app) (io.ReadCloser, string, error) {
	if o.File != "" {
		f, err := os.Open(o.File)
		return f, o.File, err
	}
	return io.NopCloser(a.in), "<stdin>", nil
}

// output collects a command's output in a temporary file (beside -w's file, so the final
// rename is atomic) and hands it over only on commit: a failure at the last document leaves
// no partial output anywhere. It only ever holds ciphertext or, for --recovery-unseal,
// what the user asked to print.
type output struct {
	f    *os.File
	bw   *bufio.Writer
	path string // -w, or "" for stdout
}

func newOutput(path string) (*output, error) {
	dir := os.TempDir()
	if path != "" {
		dir = filepath.Dir(path)
	}
	f, err := os.CreateTemp(dir, ".keyway-*")
	if err != nil {
		return nil, err
	}
	return &output{f: f, bw: bufio.NewWriterSize(f, 256<<10), path: path}, nil
}

// encode writes the i-th object of the output in format.
func (w *output) encode(obj any, format string, i int) error {
	if format == "yaml" && i > 0 {
		if _, err := w.bw.WriteString("---\n"); err != nil {
			return err
		}
	}
	data, err := sealing.Encode([]any{obj}, format)
	if err != nil {
		return err
	}
	_, err = w.bw.Write(data)
	return err
}

// commit moves the output into place: renamed over -w's file, or copied to stdout.
func (w *output) commit(stdout io.Writer) error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if w.path != "" {
		if err := w.f.Close(); err != nil {
			return err
		}
		return os.Rename(w.f.Name(), w.path)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(stdout, w.f)
	return err
}

// discard removes the temporary file unless commit renamed it.
func (w *output) discard() {
	w.f.Close()
	os.Remove(w.f.Name())
}
