package membershipd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	// The body was hashed once, as it streamed in, and matched the signed
	// digest; the blob id must be that digest.
	if hex.EncodeToString(req.bodySHA256[:]) != sum {
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
