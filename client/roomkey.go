package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// RoomKey is a room's symmetric key for one key epoch.
type RoomKey struct {
	Room  string
	Epoch int64
	Key   [32]byte
}

// NewRoomKey makes a random key for a room's epoch.
func NewRoomKey(room string, epoch int64) RoomKey {
	k := RoomKey{Room: room, Epoch: epoch}
	rand.Read(k.Key[:])
	return k
}

// Seal encrypts the key to one member's age recipient.
func (k RoomKey) Seal(recipient string) ([]byte, error) {
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return nil, fmt.Errorf("age recipient %q: %w", recipient, err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, err
	}
	w.Write(k.Key[:])
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// OpenRoomKey decrypts a sealed key with the identity's age key.
func (id *Identity) OpenRoomKey(sk SealedKey) (RoomKey, error) {
	r, err := age.Decrypt(bytes.NewReader(sk.Sealed), id.Age)
	if err != nil {
		return RoomKey{}, fmt.Errorf("open the key of room %s: %w", sk.Room, err)
	}
	k := RoomKey{Room: sk.Room, Epoch: sk.Epoch}
	if n, err := io.ReadFull(r, k.Key[:]); err != nil || n != 32 {
		return RoomKey{}, fmt.Errorf("open the key of room %s: not a 32-byte key", sk.Room)
	}
	if extra, _ := r.Read(make([]byte, 1)); extra != 0 {
		return RoomKey{}, fmt.Errorf("open the key of room %s: not a 32-byte key", sk.Room)
	}
	return k, nil
}

// ShareRoomKey seals k to every listed member and uploads each sealed copy.
// Every member's record must trace to an admin the caller trusts
// ([Client.TrustedRecipient]); all are checked before anything is sealed,
// so one untrusted record stops the whole call and nobody gets the key.
func (c *Client) ShareRoomKey(ctx context.Context, k RoomKey, handles ...string) error {
	recipients, err := c.trustedRecipients(ctx, handles)
	if err != nil {
		return err
	}
	return c.sealTo(ctx, k, handles, recipients)
}

// sealTo seals k to recipients already verified, in the order of handles.
func (c *Client) sealTo(ctx context.Context, k RoomKey, handles []string, recipients map[string]string) error {
	sealed := make([][]byte, len(handles))
	for i, h := range handles {
		var err error
		if sealed[i], err = k.Seal(recipients[h]); err != nil {
			return fmt.Errorf("member %s: %w", h, err)
		}
	}
	for i, h := range handles {
		if err := c.PutSealedKey(ctx, k.Room, h, k.Epoch, sealed[i]); err != nil {
			return fmt.Errorf("key for %s: %w", h, err)
		}
	}
	return nil
}

// RoomKey fetches and opens the caller's current key of a room.
func (c *Client) RoomKey(ctx context.Context, room string) (RoomKey, error) {
	sk, err := c.SealedKey(ctx, room, c.id.Handle)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == 404 {
		return RoomKey{}, fmt.Errorf("no key of room %s for %s yet: a member of the room must share it (unibus room add or unibus room rekey)", room, c.id.Handle)
	}
	if err != nil {
		return RoomKey{}, err
	}
	return c.id.OpenRoomKey(sk)
}

// CreateRoomWithKey creates a room, makes its first key and seals it to the
// caller, its only member so far.
func (c *Client) CreateRoomWithKey(ctx context.Context, name string) (Room, RoomKey, error) {
	room, err := c.CreateRoom(ctx, name)
	if err != nil {
		return Room{}, RoomKey{}, err
	}
	k := NewRoomKey(room.ID, room.KeyEpoch)
	if err := c.ShareRoomKey(ctx, k, c.id.Handle); err != nil {
		return room, RoomKey{}, err
	}
	return room, k, nil
}

// AddMemberWithKey adds handle to the room and seals the caller's current
// room key to them, so they can read from the start.
//
// handle's record is checked first: one that does not trace to an admin the
// caller trusts is refused before the room changes.
func (c *Client) AddMemberWithKey(ctx context.Context, room, handle string) (Room, error) {
	k, err := c.RoomKey(ctx, room)
	if err != nil {
		return Room{}, err
	}
	recipients, err := c.trustedRecipients(ctx, []string{handle})
	if err != nil {
		return Room{}, err
	}
	r, err := c.AddRoomMember(ctx, room, handle)
	if err != nil {
		return Room{}, err
	}
	if k.Epoch != r.KeyEpoch {
		return r, fmt.Errorf("room %s is at key epoch %d but your key is epoch %d: run unibus room rekey", room, r.KeyEpoch, k.Epoch)
	}
	return r, c.sealTo(ctx, k, []string{handle}, recipients)
}

// Rekey makes a new key for the room's current epoch and shares it with
// every member; run it after a member leaves. It seals nothing unless every
// member's record is trusted (see [Client.ShareRoomKey]).
func (c *Client) Rekey(ctx context.Context, room string) (RoomKey, error) {
	r, err := c.Room(ctx, room)
	if err != nil {
		return RoomKey{}, err
	}
	k := NewRoomKey(r.ID, r.KeyEpoch)
	return k, c.ShareRoomKey(ctx, k, r.Members...)
}

// RemoveMemberAndRekey removes handle and re-keys the room for the rest.
func (c *Client) RemoveMemberAndRekey(ctx context.Context, room, handle string) (Room, RoomKey, error) {
	if _, err := c.RemoveRoomMember(ctx, room, handle); err != nil {
		return Room{}, RoomKey{}, err
	}
	k, err := c.Rekey(ctx, room)
	if err != nil {
		return Room{}, RoomKey{}, err
	}
	r, err := c.Room(ctx, room)
	return r, k, err
}
