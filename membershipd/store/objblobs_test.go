package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestObjectBlobs(t *testing.T) {
	ctx := testCtx(t)
	b, err := NewObjectBlobs(ctx, testConnect(t, testJetStream(t)), 1)
	must(t, "NewObjectBlobs", err)
	data := bytes.Repeat([]byte("blob "), 100_000) // several chunks
	sum := sha256Hex(data)

	wantErr(t, "Put under the wrong digest", b.Put(ctx, sha256Hex([]byte("other")), data), ErrDigestMismatch)
	if err := b.Put(ctx, "../etc/passwd", data); err == nil {
		t.Fatal("Put accepted a name that is not a digest")
	}
	_, _, err = b.Open(ctx, sum)
	wantErr(t, "Open before Put", err, ErrNotFound)
	must(t, "Put", b.Put(ctx, sum, data))
	must(t, "Put again", b.Put(ctx, sum, data))
	r, size, err := b.Open(ctx, sum)
	must(t, "Open", err)
	defer r.Close()
	got, err := io.ReadAll(r)
	must(t, "read", err)
	if size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("Open: size %d, %d bytes read, want %d", size, len(got), len(data))
	}
	if _, _, err := b.Open(ctx, "not-a-digest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a bad name: %v", err)
	}
}
