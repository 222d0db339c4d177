package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// BlobDir stores blobs by SHA-256 under <state-dir>/blobs/<2 hex>/<64 hex>.
// Paths are built only from validated digests, never from a request string.
type BlobDir string

func (b BlobDir) path(sum string) string { return filepath.Join(string(b), sum[:2], sum) }

// Put writes data under its digest: temp file, fsync, rename, so a reader
// never sees a partial blob and a crash leaves none behind but temp files.
func (b BlobDir) Put(_ context.Context, sum string, data []byte) error {
	dst := b.path(sum)
	if _, err := os.Stat(dst); err == nil {
		return nil // content-addressed: same digest, same bytes
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// Open returns the blob and its size, or ErrNotFound.
func (b BlobDir) Open(_ context.Context, sum string) (io.ReadCloser, int64, error) {
	f, err := os.Open(b.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}
