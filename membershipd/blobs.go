package membershipd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd/store"
)

// blobStore keeps blob bytes by SHA-256: a folder on a single node, a
// JetStream object store in a cluster. Open returns store.ErrNotFound for
// an unknown digest.
type blobStore interface {
	Put(ctx context.Context, sum string, data []byte) error
	Open(ctx context.Context, sum string) (io.ReadCloser, int64, error)
}

// blobDir stores blobs by SHA-256 under <state-dir>/blobs/<2 hex>/<64 hex>.
// Paths are built only from validated digests, never from a request string.
type blobDir string

func (b blobDir) path(sum string) string { return filepath.Join(string(b), sum[:2], sum) }

// put writes data under its digest: temp file, fsync, rename, so a reader
// never sees a partial blob and a crash leaves none behind but temp files.
func (b blobDir) Put(_ context.Context, sum string, data []byte) error {
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

func (b blobDir) Open(_ context.Context, sum string) (io.ReadCloser, int64, error) {
	f, err := os.Open(b.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, store.ErrNotFound
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

// blobRoom reads and checks the ?room= parameter and the caller's membership.
func (d *Daemon) blobRoom(w http.ResponseWriter, r *http.Request, req *request) (sum, room string, ok bool) {
	sum = r.PathValue("sha256")
	if err := ids.ValidSHA256(sum); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return "", "", false
	}
	room = r.URL.Query().Get("room")
	if err := ids.ValidRoomID(room); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "?room=: "+err.Error())
		return "", "", false
	}
	rm, err := d.st().Room(r.Context(), room)
	if err != nil || !rm.Has(req.member.Handle) {
		writeError(w, http.StatusNotFound, "not_found", "no such room, or you are not in it")
		return "", "", false
	}
	return sum, room, true
}

func (d *Daemon) putBlob(w http.ResponseWriter, r *http.Request, req *request) {
	sum, room, ok := d.blobRoom(w, r, req)
	if !ok {
		return
	}
	got := sha256.Sum256(req.body)
	if hex.EncodeToString(got[:]) != sum {
		writeError(w, http.StatusBadRequest, "digest_mismatch", "the body's SHA-256 is not the blob id in the path")
		return
	}
	if err := d.blobStore().Put(r.Context(), sum, req.body); err != nil {
		d.internalError(w, r, fmt.Errorf("write blob: %w", err))
		return
	}
	// Recorded after the bytes are safely on disk: a blob listed is a blob
	// that can be read.
	if err := d.st().AddBlob(r.Context(), sum, room, int64(len(req.body))); err != nil {
		d.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"sha256": sum, "room": room, "size": len(req.body)})
}

func (d *Daemon) getBlob(w http.ResponseWriter, r *http.Request, req *request) {
	sum, room, ok := d.blobRoom(w, r, req)
	if !ok {
		return
	}
	in, err := d.st().BlobInRoom(r.Context(), sum, room)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	if !in {
		writeError(w, http.StatusNotFound, "not_found", "no such blob in this room")
		return
	}
	f, size, err := d.blobStore().Open(r.Context(), sum)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such blob in this room")
		return
	}
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	io.Copy(w, f)
}
