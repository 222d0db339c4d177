package provision

import (
	"context"
	"path"
	"strings"
)

// SnapshotRequest is what plan reads of one node: every file at or under
// Paths with its mode and hash, the contents of the public ones (under
// one of PublicDirs, or named *PublicExt), and the recipient of the age
// identity at Identity. Secret files are hashed on the node and never
// read back.
type SnapshotRequest struct {
	Paths      []string
	PublicDirs []string
	PublicExt  string
	Identity   string
}

// Public says whether the file at p may be read back.
func (r SnapshotRequest) Public(p string) bool {
	if p == r.Identity {
		return false
	}
	if r.PublicExt != "" && strings.HasSuffix(path.Base(p), r.PublicExt) {
		return true
	}
	for _, d := range r.PublicDirs {
		if hasPrefixPath(p, d) {
			return true
		}
	}
	return false
}

// Snapshot is a node's files as a [SnapshotRequest] asked for them.
type Snapshot struct {
	Files     []FileState
	Public    map[string][]byte // path: contents, for every public file
	Recipient string            // "" when the node has no identity yet
}

// Snapshotter is a [Transport] that takes a whole snapshot at once, in
// one round trip to a remote node instead of one per file.
type Snapshotter interface {
	Snapshot(ctx context.Context, r SnapshotRequest) (*Snapshot, error)
}

// TakeSnapshot reads what r asks of t: at once where t is a
// [Snapshotter], else call by call.
func TakeSnapshot(ctx context.Context, t Transport, r SnapshotRequest) (*Snapshot, error) {
	if s, ok := t.(Snapshotter); ok {
		return s.Snapshot(ctx, r)
	}
	files, err := t.Files(ctx, r.Paths)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Files: files, Public: map[string][]byte{}}
	for _, f := range files {
		if !r.Public(f.Path) {
			continue
		}
		data, ok, err := t.ReadPublic(ctx, f.Path)
		if err != nil {
			return nil, err
		}
		if ok { // (gone since it was listed: as if never there)
			snap.Public[f.Path] = data
		}
	}
	if r.Identity != "" {
		if snap.Recipient, _, err = t.AgeRecipient(ctx, r.Identity); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// A ServiceSnapshotter reads a node's files and its service at once: a
// remote node in one SSH session. Where a node's transport is one,
// observation uses it instead of the transport and
// [ObserveOptions.Service] apart.
type ServiceSnapshotter interface {
	SnapshotService(ctx context.Context, r SnapshotRequest, unit string) (*Snapshot, *ServiceState, error)
}
