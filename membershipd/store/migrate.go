package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// MigrateCounts is what happened to one kind of record.
type MigrateCounts struct {
	Created     int // copied into KV
	Present     int // already in KV, identical
	Conflicting int // in KV with different content: kept as KV has it
}

func (c MigrateCounts) String() string {
	return fmt.Sprintf("%d created, %d already present, %d conflicting", c.Created, c.Present, c.Conflicting)
}

// MigrateSummary is the outcome of Migrate.
type MigrateSummary struct {
	Members, Rooms, SealedKeys, Blobs MigrateCounts
	// Conflicts says, one line each, what was not copied and why.
	Conflicts []string
}

// Changed reports whether the run wrote anything.
func (s MigrateSummary) Changed() bool {
	return s.Members.Created+s.Rooms.Created+s.SealedKeys.Created+s.Blobs.Created > 0
}

func (s MigrateSummary) String() string {
	line := fmt.Sprintf("members %v; rooms %v; sealed keys %v; blobs %v", s.Members, s.Rooms, s.SealedKeys, s.Blobs)
	if !s.Changed() && len(s.Conflicts) == 0 {
		line += " (nothing to do: KV already has all of it)"
	}
	return line
}

// Migrate copies the single-node state into KV: members (handle, role,
// signing key, age recipient, vouch), rooms (members, owner, key epoch) and sealed
// keys. It never overwrites: a record KV already has identically counts as
// present, a different one as a conflict (reported, KV's kept), so running
// it again changes nothing. A room with a conflicting member is not copied
// (nor its keys, nor its blobs): it would hand the room to whoever holds
// that handle in KV. Blobs go into the object store toBlobs, each checked
// against its digest, before the index lists them; a blob missing from the
// state dir or not matching its digest is reported, not copied. Nonces are
// not copied: they expire within minutes.
func Migrate(ctx context.Context, from *SQLite, to *KV, toBlobs *ObjectBlobs) (MigrateSummary, error) {
	var sum MigrateSummary
	conflict := func(c *MigrateCounts, format string, args ...any) {
		c.Conflicting++
		sum.Conflicts = append(sum.Conflicts, fmt.Sprintf(format, args...))
	}

	members, err := from.AllMembers(ctx)
	if err != nil {
		return sum, fmt.Errorf("read members from %s: %w", from.path, err)
	}
	badHandle := map[string]bool{}
	for _, m := range members {
		m = normalizeMember(m)
		got, err := to.Member(ctx, m.Handle)
		if errors.Is(err, ErrNotFound) {
			err = to.createMember(ctx, m)
			if errors.Is(err, ErrExists) {
				// Lost a race for the handle, or the key is another's.
				got, err = to.Member(ctx, m.Handle)
				if errors.Is(err, ErrNotFound) {
					badHandle[m.Handle] = true
					conflict(&sum.Members, "member %s: its signing key belongs to another member in KV", m.Handle)
					continue
				}
			} else if err == nil {
				sum.Members.Created++
				continue
			}
		}
		if err != nil {
			return sum, fmt.Errorf("member %s: %w", m.Handle, err)
		}
		if diff := memberDiff(m, got); diff != "" {
			badHandle[m.Handle] = true
			conflict(&sum.Members, "member %s: KV has a different %s", m.Handle, diff)
			continue
		}
		sum.Members.Present++
		if m.Role == RoleAdmin {
			// A KV written by hand or by an older tool may lack the marker.
			if _, err := to.create(ctx, to.index, firstAdminKey, []byte(m.Handle)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return sum, fmt.Errorf("member %s: mark first admin: %w", m.Handle, err)
			}
		}
	}

	rooms, err := from.AllRooms(ctx)
	if err != nil {
		return sum, fmt.Errorf("read rooms from %s: %w", from.path, err)
	}
	var copied []Room
	for _, r := range rooms {
		if bad := slices.IndexFunc(r.Members, func(h string) bool { return badHandle[h] }); bad >= 0 || badHandle[r.Owner] {
			who := r.Owner
			if bad >= 0 {
				who = r.Members[bad]
			}
			conflict(&sum.Rooms, "room %s: member %s conflicts, room not copied", r.ID, who)
			continue
		}
		// No Joined epochs: every key SQLite serves stays servable.
		kr := kvRoom{ID: r.ID, Name: r.Name, Owner: r.Owner, KeyEpoch: r.KeyEpoch,
			Members: append([]string{}, r.Members...), Created: r.Created}
		slices.Sort(kr.Members)
		got, _, err := to.kvRoom(ctx, r.ID)
		if errors.Is(err, ErrNotFound) {
			err = to.createRoom(ctx, kr)
			if err == nil {
				sum.Rooms.Created++
				copied = append(copied, r)
				continue
			}
			if errors.Is(err, ErrExists) {
				got, _, err = to.kvRoom(ctx, r.ID)
			}
		}
		if err != nil {
			return sum, fmt.Errorf("room %s: %w", r.ID, err)
		}
		if diff := roomDiff(kr, got); diff != "" {
			conflict(&sum.Rooms, "room %s: KV has a different %s", r.ID, diff)
			continue
		}
		sum.Rooms.Present++
		copied = append(copied, r)
	}

	for _, r := range copied {
		for _, h := range r.Members {
			k, err := from.SealedKey(ctx, r.ID, h)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return sum, fmt.Errorf("read sealed key of %s in room %s: %w", h, r.ID, err)
			}
			name := sealedKeyName(r.ID, h)
			value, _ := json.Marshal(k)
			_, err = to.create(ctx, to.sealed, name, value)
			if err == nil {
				sum.SealedKeys.Created++
				continue
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return sum, fmt.Errorf("sealed key of %s in room %s: %w", h, r.ID, err)
			}
			e, err := to.get(ctx, BucketSealed, name)
			if err != nil {
				return sum, fmt.Errorf("sealed key of %s in room %s: %w", h, r.ID, err)
			}
			var got SealedKey
			if json.Unmarshal(e.value, &got) != nil || got.Epoch != k.Epoch || !bytes.Equal(got.Sealed, k.Sealed) {
				conflict(&sum.SealedKeys, "sealed key of %s in room %s: KV has a different key (epoch %d, SQLite %d)", h, r.ID, got.Epoch, k.Epoch)
				continue
			}
			sum.SealedKeys.Present++
		}
	}

	if err := migrateBlobs(ctx, from, to, toBlobs, copied, &sum, conflict); err != nil {
		return sum, err
	}
	return sum, nil
}

// migrateBlobs copies the blobs of the copied rooms: the bytes first, then
// the index entry, so a blob KV lists is a blob KV can serve. One already
// listed and stored whole is not read again.
func migrateBlobs(ctx context.Context, from *SQLite, to *KV, toBlobs *ObjectBlobs, copied []Room, sum *MigrateSummary,
	conflict func(*MigrateCounts, string, ...any)) error {
	refs, err := from.AllBlobs(ctx)
	if err != nil {
		return fmt.Errorf("read the blob index from %s: %w", from.path, err)
	}
	rooms := map[string]bool{}
	for _, r := range copied {
		rooms[r.ID] = true
	}
	dir := from.Blobs()
	for _, b := range refs {
		if !rooms[b.Room] {
			continue // its room was not copied, and says why
		}
		listed, err := to.BlobInRoom(ctx, b.SHA256, b.Room)
		if err != nil {
			return fmt.Errorf("blob %s in room %s: %w", b.SHA256, b.Room, err)
		}
		stored, err := toBlobs.Has(ctx, b.SHA256, b.Size)
		if err != nil {
			return err
		}
		if listed && stored {
			sum.Blobs.Present++
			continue
		}
		if !stored {
			data, err := readBlob(ctx, dir, b)
			if err != nil {
				conflict(&sum.Blobs, "blob %s of room %s: %v; not copied", b.SHA256, b.Room, err)
				continue
			}
			if err := toBlobs.Put(ctx, b.SHA256, data); err != nil {
				return err
			}
		}
		if err := to.AddBlob(ctx, b.SHA256, b.Room, b.Size); err != nil {
			return err
		}
		sum.Blobs.Created++
	}
	return nil
}

// readBlob reads one blob of the state dir whole and checks it is what the
// index says.
func readBlob(ctx context.Context, dir BlobDir, b BlobRef) ([]byte, error) {
	f, _, err := dir.Open(ctx, b.SHA256)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("missing from %s", dir)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, b.Size+1)) // a larger file is wrong anyway
	if err != nil {
		return nil, err
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != b.SHA256 || int64(len(data)) != b.Size {
		return nil, fmt.Errorf("the file in %s does not match its digest (%d bytes, the index says %d)", dir, len(data), b.Size)
	}
	return data, nil
}

func memberDiff(want, got Member) string {
	var d []string
	if want.Role != got.Role {
		d = append(d, "role")
	}
	if want.SignPub != got.SignPub {
		d = append(d, "signing key")
	}
	if want.AgeRecipient != got.AgeRecipient {
		d = append(d, "age recipient")
	}
	if want.VouchedBy != got.VouchedBy || want.VouchSig != got.VouchSig {
		d = append(d, "vouch")
	}
	return strings.Join(d, ", ")
}

func roomDiff(want, got kvRoom) string {
	var d []string
	if want.Name != got.Name {
		d = append(d, "name")
	}
	if want.Owner != got.Owner {
		d = append(d, "owner")
	}
	if want.KeyEpoch != got.KeyEpoch {
		d = append(d, "key epoch")
	}
	g := append([]string{}, got.Members...)
	slices.Sort(g)
	if !slices.Equal(want.Members, g) {
		d = append(d, "member list")
	}
	return strings.Join(d, ", ")
}
