package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvRoom is a room as stored in BucketRooms.
type kvRoom struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Owner    string   `json:"owner"`
	KeyEpoch int64    `json:"key_epoch"`
	Members  []string `json:"members"`
	// Joined is the key epoch at which each member last joined. A sealed
	// key of an earlier epoch is a leftover of a previous membership (a
	// removal whose key delete did not happen) and is never served.
	Joined  map[string]int64 `json:"joined,omitempty"`
	Created time.Time        `json:"created"`
}

func (r kvRoom) room() Room {
	members := append([]string{}, r.Members...)
	slices.Sort(members)
	return Room{ID: r.ID, Name: r.Name, Owner: r.Owner, KeyEpoch: r.KeyEpoch, Members: members, Created: r.Created}
}

func (r kvRoom) has(handle string) bool { return slices.Contains(r.Members, handle) }

// servable reports whether k may be handed to its member: the member is in
// the room, and the key is from no earlier than its latest join and no later
// than the room's epoch.
func (r kvRoom) servable(k SealedKey) bool {
	return r.has(k.Handle) && k.Epoch >= r.Joined[k.Handle] && k.Epoch <= r.KeyEpoch
}

// orphanGrace is how old a reservation (a sign_pub index entry, the
// first-admin marker) must be before a create may take it over from a
// creator that never finished: long enough that it cannot be one still in
// flight on another node, short enough that a crash does not block the
// handle for long. Nodes' clocks are assumed within a few seconds.
const orphanGrace = 30 * time.Second

const firstAdminKey = "first-admin"

func signPubKey(pub string) string { return "signpub." + pub }

func sealedKeyName(room, handle string) string { return room + "." + handle }

// validKey is nats.go's rule for KV keys. Anything else never reaches a
// subject: a "*" or ">" would turn a leader read into a wildcard read.
func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '/' || c == '.') {
			return false
		}
	}
	return true
}

// validToken is validKey without dots: one token of a composite key.
func validToken(s string) bool {
	return validKey(s) && !containsDot(s)
}

func containsDot(s string) bool {
	for _, c := range []byte(s) {
		if c == '.' {
			return true
		}
	}
	return false
}

// normalizeMember stores Created as SQLite does: whole seconds, UTC.
func normalizeMember(m Member) Member {
	m.Created = time.Unix(m.Created.Unix(), 0).UTC()
	return m
}

func (s *KV) CreateMember(ctx context.Context, m Member) error {
	return s.createMember(ctx, normalizeMember(m))
}

// createMember reserves the signing key first (create-if-absent on
// signpub.<key> in BucketIndex), then the handle (create-if-absent in
// BucketMembers), so no two members ever share a signing key: a second
// member with the same key stops at the reservation.
func (s *KV) createMember(ctx context.Context, m Member) error {
	if m.Role != RoleAdmin && m.Role != RoleMember {
		return fmt.Errorf("member %q: role %q: must be admin or member", m.Handle, m.Role)
	}
	if !validToken(m.Handle) || !validToken(m.SignPub) {
		return fmt.Errorf("member %q: handle or signing key %q is not a valid key", m.Handle, m.SignPub)
	}
	exists := fmt.Errorf("member %q or its signing key: %w", m.Handle, ErrExists)
	idxKey := signPubKey(m.SignPub)
	idxRev, err := s.create(ctx, s.index, idxKey, []byte(m.Handle))
	if errors.Is(err, jetstream.ErrKeyExists) {
		idxRev, err = s.takeOver(ctx, idxKey, m.Handle, func(owner string) (bool, error) {
			o, err := s.Member(ctx, owner)
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return err == nil && o.SignPub == m.SignPub, err
		})
		if errors.Is(err, ErrExists) {
			return exists
		}
	}
	if err != nil {
		return fmt.Errorf("member %q: reserve signing key: %w", m.Handle, err)
	}
	value, _ := json.Marshal(m)
	memberRev, err := s.create(ctx, s.members, m.Handle, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		// The handle is taken; give the key back unless it already was
		// this handle's (a retry of a create that half happened).
		if o, err := s.Member(ctx, m.Handle); err == nil && o.SignPub != m.SignPub {
			s.index.Delete(ctx, idxKey, jetstream.LastRevision(idxRev))
		}
		return exists
	}
	if err != nil {
		return fmt.Errorf("member %q: %w", m.Handle, err)
	}
	// A reservation is taken over only after orphanGrace; if that happened
	// to ours while we were stalled, the other member owns the key now.
	if e, err := s.get(ctx, BucketIndex, idxKey); err == nil && string(e.value) != m.Handle {
		s.members.Delete(ctx, m.Handle, jetstream.LastRevision(memberRev))
		return exists
	}
	if m.Role == RoleAdmin {
		// Marks that an admin exists, for HasAdmin's fast path and so a
		// later CreateFirstAdmin is refused.
		if _, err := s.create(ctx, s.index, firstAdminKey, []byte(m.Handle)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("member %q: mark first admin: %w", m.Handle, err)
		}
	}
	return nil
}

// takeOver handles a reservation key that already exists. If it names
// handle, it is ours from an earlier attempt. If live(owner) says its owner
// holds it, ErrExists. Otherwise the owner never finished: once the entry is
// older than orphanGrace it is taken over by compare-and-set.
func (s *KV) takeOver(ctx context.Context, key, handle string, live func(owner string) (bool, error)) (uint64, error) {
	e, err := s.get(ctx, BucketIndex, key)
	if errors.Is(err, ErrNotFound) {
		// Deleted since: try the create once more.
		rev, err := s.create(ctx, s.index, key, []byte(handle))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, ErrExists
		}
		return rev, err
	}
	if err != nil {
		return 0, err
	}
	owner := string(e.value)
	if owner == handle {
		return e.revision, nil
	}
	ok, err := live(owner)
	if err != nil {
		return 0, err
	}
	if ok || time.Since(e.created) < orphanGrace {
		return 0, ErrExists
	}
	rev, err := s.update(ctx, s.index, key, []byte(handle), e.revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrExists
	}
	return rev, err
}

func (s *KV) Member(ctx context.Context, handle string) (Member, error) {
	notFound := fmt.Errorf("member %q: %w", handle, ErrNotFound)
	if !validToken(handle) {
		return Member{}, notFound
	}
	e, err := s.get(ctx, BucketMembers, handle)
	if errors.Is(err, ErrNotFound) {
		return Member{}, notFound
	}
	if err != nil {
		return Member{}, err
	}
	var m Member
	if err := json.Unmarshal(e.value, &m); err != nil {
		return Member{}, fmt.Errorf("member %q: stored value: %w", handle, err)
	}
	return m, nil
}

// HasAdmin: members are never deleted and roles never change, so the
// first-admin marker naming an admin that exists settles it; without one
// (a store written by an older migration, or a crashed bootstrap) it scans.
func (s *KV) HasAdmin(ctx context.Context) (bool, error) {
	if e, err := s.get(ctx, BucketIndex, firstAdminKey); err == nil {
		if m, err := s.Member(ctx, string(e.value)); err == nil && m.Role == RoleAdmin {
			return true, nil
		}
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	members, err := s.AllMembers(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.Role == RoleAdmin {
			return true, nil
		}
	}
	return false, nil
}

// CreateFirstAdmin is atomic across nodes through the first-admin marker:
// create-if-absent, so of two nodes bootstrapping at once one wins.
func (s *KV) CreateFirstAdmin(ctx context.Context, m Member) error {
	m = normalizeMember(m)
	m.Role = RoleAdmin
	exists := fmt.Errorf("an admin: %w", ErrExists)
	if has, err := s.HasAdmin(ctx); err != nil {
		return err
	} else if has {
		return exists
	}
	_, err := s.create(ctx, s.index, firstAdminKey, []byte(m.Handle))
	if errors.Is(err, jetstream.ErrKeyExists) {
		_, err = s.takeOver(ctx, firstAdminKey, m.Handle, func(owner string) (bool, error) {
			o, err := s.Member(ctx, owner)
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return err == nil && o.Role == RoleAdmin, err
		})
		if errors.Is(err, ErrExists) {
			return exists
		}
	}
	if err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	return s.createMember(ctx, m)
}

func (s *KV) AllMembers(ctx context.Context) ([]Member, error) {
	var out []Member
	err := s.leaderScan(ctx, BucketMembers, func(key string, e entry) error {
		var m Member
		if err := json.Unmarshal(e.value, &m); err != nil {
			return fmt.Errorf("member %q: stored value: %w", key, err)
		}
		out = append(out, m)
		return nil
	})
	slices.SortFunc(out, func(a, b Member) int { return cmpString(a.Handle, b.Handle) })
	return out, err
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CreateRoom stores r with its owner as first member. Unlike SQLite (whose
// foreign-key failure reads as ErrExists), a missing owner is ErrNotFound.
func (s *KV) CreateRoom(ctx context.Context, r Room) error {
	if !validToken(r.ID) {
		return fmt.Errorf("room %q: not a valid id", r.ID)
	}
	if _, err := s.Member(ctx, r.Owner); err != nil {
		return fmt.Errorf("room %q: owner: %w", r.ID, err)
	}
	kr := kvRoom{
		ID: r.ID, Name: r.Name, Owner: r.Owner, KeyEpoch: r.KeyEpoch,
		Members: []string{r.Owner}, Joined: map[string]int64{r.Owner: r.KeyEpoch},
		Created: time.Unix(r.Created.Unix(), 0).UTC(),
	}
	return s.createRoom(ctx, kr)
}

func (s *KV) createRoom(ctx context.Context, kr kvRoom) error {
	value, _ := json.Marshal(kr)
	_, err := s.create(ctx, s.rooms, kr.ID, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("room %q: %w", kr.ID, ErrExists)
	}
	return err
}

func (s *KV) kvRoom(ctx context.Context, id string) (kvRoom, entry, error) {
	notFound := fmt.Errorf("room %q: %w", id, ErrNotFound)
	if !validToken(id) {
		return kvRoom{}, entry{}, notFound
	}
	e, err := s.get(ctx, BucketRooms, id)
	if errors.Is(err, ErrNotFound) {
		return kvRoom{}, entry{}, notFound
	}
	if err != nil {
		return kvRoom{}, entry{}, err
	}
	r, err := decodeRoom(id, e.value)
	return r, e, err
}

func decodeRoom(id string, value []byte) (kvRoom, error) {
	var r kvRoom
	if err := json.Unmarshal(value, &r); err != nil {
		return kvRoom{}, fmt.Errorf("room %q: stored value: %w", id, err)
	}
	return r, nil
}

func (s *KV) Room(ctx context.Context, id string) (Room, error) {
	r, _, err := s.kvRoom(ctx, id)
	if err != nil {
		return Room{}, err
	}
	return r.room(), nil
}

func (s *KV) RoomsOf(ctx context.Context, handle string) ([]Room, error) {
	all, err := s.AllRooms(ctx)
	if err != nil {
		return nil, err
	}
	var out []Room
	for _, r := range all {
		if r.Has(handle) {
			out = append(out, r)
		}
	}
	return out, nil
}

// AllRooms in SQLite's order: by creation time, then id.
func (s *KV) AllRooms(ctx context.Context) ([]Room, error) {
	var out []Room
	err := s.leaderScan(ctx, BucketRooms, func(key string, e entry) error {
		r, err := decodeRoom(key, e.value)
		if err != nil {
			return err
		}
		out = append(out, r.room())
		return nil
	})
	slices.SortFunc(out, func(a, b Room) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmpString(a.ID, b.ID)
	})
	return out, err
}

func (s *KV) AddRoomMember(ctx context.Context, room, handle string) error {
	if _, err := s.Member(ctx, handle); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("room %q or member %q: %w", room, handle, ErrNotFound)
	} else if err != nil {
		return err
	}
	if !validToken(room) {
		return fmt.Errorf("room %q or member %q: %w", room, handle, ErrNotFound)
	}
	var joined int64
	_, err := s.casUpdate(ctx, s.rooms, BucketRooms, room, func(e entry) ([]byte, error) {
		r, err := decodeRoom(room, e.value)
		if err != nil {
			return nil, err
		}
		if r.has(handle) {
			return nil, fmt.Errorf("%q in room %q: %w", handle, room, ErrExists)
		}
		r.Members = append(r.Members, handle)
		slices.Sort(r.Members)
		if r.Joined == nil {
			r.Joined = map[string]int64{}
		}
		r.Joined[handle] = r.KeyEpoch
		joined = r.KeyEpoch
		return json.Marshal(r)
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("room %q or member %q: %w", room, handle, ErrNotFound)
	}
	if err != nil {
		return err
	}
	// A key left from an earlier membership is already unservable
	// (Joined); tidy it away if it is still there.
	s.deleteSealedBefore(ctx, room, handle, joined)
	return nil
}

// deleteSealedBefore deletes handle's sealed key in room if its epoch is
// older than epoch, by compare-and-set, so a key written for a newer epoch
// meanwhile survives. Best effort: a leftover is never served anyway.
func (s *KV) deleteSealedBefore(ctx context.Context, room, handle string, epoch int64) {
	key := sealedKeyName(room, handle)
	e, err := s.get(ctx, BucketSealed, key)
	if err != nil {
		return
	}
	var k SealedKey
	if json.Unmarshal(e.value, &k) == nil && k.Epoch < epoch {
		s.sealed.Delete(ctx, key, jetstream.LastRevision(e.revision))
	}
}

// RemoveRoomMember updates the room first (member gone, epoch bumped: from
// this moment no read serves the member's key, since SealedKey checks
// membership) and deletes the sealed key second. A crash in between leaves
// a key nobody can read, removed when the member is added again.
func (s *KV) RemoveRoomMember(ctx context.Context, room, handle string) (int64, error) {
	notMember := fmt.Errorf("%q in room %q: %w", handle, room, ErrNotMember)
	if !validToken(room) || !validToken(handle) {
		return 0, notMember
	}
	var epoch int64
	_, err := s.casUpdate(ctx, s.rooms, BucketRooms, room, func(e entry) ([]byte, error) {
		r, err := decodeRoom(room, e.value)
		if err != nil {
			return nil, err
		}
		if !r.has(handle) {
			return nil, notMember
		}
		r.Members = slices.DeleteFunc(r.Members, func(h string) bool { return h == handle })
		delete(r.Joined, handle)
		r.KeyEpoch++
		epoch = r.KeyEpoch
		return json.Marshal(r)
	})
	if errors.Is(err, ErrNotFound) {
		return 0, notMember
	}
	if err != nil {
		return 0, err
	}
	s.deleteSealedBefore(ctx, room, handle, epoch)
	return epoch, nil
}

// PutSealedKey checks the room's epoch and membership, writes, and checks
// again: if the room changed in between (an epoch bump, a removal), the
// write is taken back, so a key never outlives the check it passed.
func (s *KV) PutSealedKey(ctx context.Context, k SealedKey) error {
	check := func() error {
		r, _, err := s.kvRoom(ctx, k.Room)
		if err != nil {
			return err
		}
		if k.Epoch != r.KeyEpoch {
			return fmt.Errorf("epoch %d, room is at %d: %w", k.Epoch, r.KeyEpoch, ErrStaleEpoch)
		}
		if !r.has(k.Handle) {
			return fmt.Errorf("%q in room %q: %w", k.Handle, k.Room, ErrNotMember)
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	if !validToken(k.Handle) {
		return fmt.Errorf("%q in room %q: %w", k.Handle, k.Room, ErrNotMember)
	}
	value, _ := json.Marshal(k)
	key := sealedKeyName(k.Room, k.Handle)
	rev, err := s.sealed.Put(ctx, key, value)
	if err != nil {
		return fmt.Errorf("sealed key of %q in room %q: %w", k.Handle, k.Room, err)
	}
	if err := check(); err != nil {
		s.sealed.Delete(ctx, key, jetstream.LastRevision(rev))
		return err
	}
	return nil
}

func (s *KV) SealedKey(ctx context.Context, room, handle string) (SealedKey, error) {
	notFound := fmt.Errorf("sealed key of %q in room %q: %w", handle, room, ErrNotFound)
	if !validToken(room) || !validToken(handle) {
		return SealedKey{}, notFound
	}
	e, err := s.get(ctx, BucketSealed, sealedKeyName(room, handle))
	if errors.Is(err, ErrNotFound) {
		return SealedKey{}, notFound
	}
	if err != nil {
		return SealedKey{}, err
	}
	var k SealedKey
	if err := json.Unmarshal(e.value, &k); err != nil {
		return SealedKey{}, fmt.Errorf("sealed key of %q in room %q: stored value: %w", handle, room, err)
	}
	r, _, err := s.kvRoom(ctx, room)
	if errors.Is(err, ErrNotFound) {
		return SealedKey{}, notFound
	}
	if err != nil {
		return SealedKey{}, err
	}
	if !r.servable(k) {
		return SealedKey{}, notFound
	}
	return k, nil
}

func blobKey(sum, room string) string { return sum + "." + room }

func (s *KV) AddBlob(ctx context.Context, sum, room string, size int64) error {
	if !validToken(sum) || !validToken(room) {
		return fmt.Errorf("blob %q in room %q: not a valid id", sum, room)
	}
	if _, _, err := s.kvRoom(ctx, room); err != nil {
		return err
	}
	_, err := s.create(ctx, s.blobIndex, blobKey(sum, room), []byte(`{"size":`+strconv.FormatInt(size, 10)+`}`))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("blob %s in room %q: %w", sum, room, err)
	}
	return nil
}

func (s *KV) BlobInRoom(ctx context.Context, sum, room string) (bool, error) {
	if !validToken(sum) || !validToken(room) {
		return false, nil
	}
	_, err := s.get(ctx, BucketBlobIndex, blobKey(sum, room))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UseNonce is a create-if-absent, which the stream leader decides for the
// whole cluster (expected last sequence 0 for the subject), so of two nodes
// seeing the same nonce exactly one succeeds. The bucket's MaxAge forgets
// nonces after NonceTTL; expires may not be later than that.
func (s *KV) UseNonce(ctx context.Context, key string, expires time.Time) error {
	if d := time.Until(expires); d > s.opts.NonceTTL+time.Second {
		return fmt.Errorf("nonce valid for %s but the nonce bucket keeps nonces only %s: raise the store's NonceTTL", d.Round(time.Second), s.opts.NonceTTL)
	}
	sum := sha256.Sum256([]byte(key))
	_, err := s.create(ctx, s.nonces, hex.EncodeToString(sum[:]), strconv.AppendInt(nil, expires.Unix(), 10))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrReplay
	}
	return err
}
