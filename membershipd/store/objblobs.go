package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/internal/ids"
)

// Blobs holds blob bytes by SHA-256: a folder on a single node, a
// JetStream object store in a cluster. Which room may read a blob is the
// Store's business (AddBlob, BlobInRoom), not this one's.
type Blobs interface {
	// Put stores data under sum, its lower-case hex SHA-256; data that does
	// not hash to sum is refused with ErrDigestMismatch. Putting a blob
	// that is already there is a no-op.
	Put(ctx context.Context, sum string, data []byte) error
	// Open returns the blob and its size, or ErrNotFound.
	Open(ctx context.Context, sum string) (io.ReadCloser, int64, error)
}

// ErrDigestMismatch: the bytes are not the blob their name says.
var ErrDigestMismatch = errors.New("data does not match its SHA-256")

// ObjectBlobs keeps blobs in the JetStream object store ObjectBlobsBucket,
// one object per blob named by its hex digest.
type ObjectBlobs struct {
	js  jetstream.JetStream
	obj jetstream.ObjectStore
}

var _ Blobs = (*ObjectBlobs)(nil)

// NewObjectBlobs binds the blob object store, creating it with replicas
// (1 or 3) if it does not exist. An existing store keeps its replicas;
// KV.SetReplicas raises them with the KV buckets.
func NewObjectBlobs(ctx context.Context, js jetstream.JetStream, replicas int) (*ObjectBlobs, error) {
	if replicas == 0 {
		replicas = 1
	}
	if replicas != 1 && replicas != 3 {
		return nil, fmt.Errorf("blob store replicas %d: must be 1 or 3", replicas)
	}
	obj, err := js.ObjectStore(ctx, ObjectBlobsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obj, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:   ObjectBlobsBucket,
			Storage:  jetstream.FileStorage,
			Replicas: replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obj, err = js.ObjectStore(ctx, ObjectBlobsBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", ObjectBlobsBucket, replicasHint(err))
	}
	return &ObjectBlobs{js: js, obj: obj}, nil
}

func (b *ObjectBlobs) Put(ctx context.Context, sum string, data []byte) error {
	if err := ids.ValidSHA256(sum); err != nil {
		return err
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("blob %s: %w", sum, ErrDigestMismatch)
	}
	// Content-addressed: the same name is the same bytes, so an existing
	// complete object is kept rather than rewritten.
	if info, err := b.obj.GetInfo(ctx, sum); err == nil && !info.Deleted && info.Size == uint64(len(data)) {
		return nil
	}
	if _, err := b.obj.Put(ctx, jetstream.ObjectMeta{Name: sum}, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("blob %s: %w", sum, err)
	}
	return nil
}

// Has reports whether the object is stored whole (size bytes).
func (b *ObjectBlobs) Has(ctx context.Context, sum string, size int64) (bool, error) {
	info, err := b.obj.GetInfo(ctx, sum)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", sum, err)
	}
	return !info.Deleted && info.Size == uint64(size), nil
}

// Open reads the object. nats.go looks the object's metadata up with a
// direct get, which a lagging replica may answer with "not found" for a blob
// just written through another node; the stream leader settles whether it
// exists, and while it does Open asks again until ctx ends.
func (b *ObjectBlobs) Open(ctx context.Context, sum string) (io.ReadCloser, int64, error) {
	if err := ids.ValidSHA256(sum); err != nil {
		return nil, 0, fmt.Errorf("blob %q: %w", sum, ErrNotFound)
	}
	for attempt := 0; ; attempt++ {
		r, err := b.obj.Get(ctx, sum)
		if err == nil {
			info, err := r.Info()
			if err != nil {
				r.Close()
				return nil, 0, err
			}
			return r, int64(info.Size), nil
		}
		if !errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, 0, fmt.Errorf("blob %s: %w", sum, err)
		}
		if exists, lerr := b.leaderHas(ctx, sum); lerr != nil {
			return nil, 0, lerr
		} else if !exists {
			return nil, 0, fmt.Errorf("blob %s: %w", sum, ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("blob %s: %w", sum, ctx.Err())
		case <-time.After(backoff(attempt)):
		}
	}
}

// leaderHas asks the object store stream's leader whether the object's
// metadata message exists (see KV.leaderGet for why the leader).
func (b *ObjectBlobs) leaderHas(ctx context.Context, sum string) (bool, error) {
	kv := &KV{js: b.js, nc: b.js.Conn()}
	subject := "$O." + ObjectBlobsBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(sum))
	m, err := kv.msgGet(ctx, "OBJ_"+ObjectBlobsBucket, msgGetRequest{LastFor: subject})
	if errors.Is(err, errNoMsg) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A deleted object's metadata stays with a deleted flag; this store
	// never deletes, so any metadata message means the object exists.
	return m != nil, nil
}
