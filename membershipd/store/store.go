package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers test with errors.Is to choose an HTTP status.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("already exists")
	ErrStaleEpoch = errors.New("key epoch is not the room's current epoch")
	ErrReplay     = errors.New("nonce already used")
	ErrNotMember  = errors.New("not a member of the room")
)

// Role is a member's role.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Member is a person or program allowed on the bus. SignPub is its Ed25519
// public key in NATS nkey form ("U..."), which is both what it signs
// control-plane requests with and its NATS identity; AgeRecipient
// ("age1...") is what room keys are sealed to. VouchSig is the signature
// (internal/vouch) of VouchedBy, the admin who added the member, over the
// record; the first admin vouches for itself. Members created before vouches
// existed have neither, and clients do not seal room keys to them.
type Member struct {
	Handle       string    `json:"handle"`
	Role         Role      `json:"role"`
	SignPub      string    `json:"sign_pub"`
	AgeRecipient string    `json:"age_recipient"`
	VouchedBy    string    `json:"vouched_by,omitempty"`
	VouchSig     string    `json:"vouch_sig,omitempty"`
	Created      time.Time `json:"created"`
}

// Room is a group of members sharing a room key. KeyEpoch grows each time a
// member leaves, telling clients to make and seal a new key.
type Room struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Owner    string    `json:"owner"`
	KeyEpoch int64     `json:"key_epoch"`
	Members  []string  `json:"members"`
	Created  time.Time `json:"created"`
}

// Has reports whether handle is a member of the room.
func (r Room) Has(handle string) bool {
	for _, m := range r.Members {
		if m == handle {
			return true
		}
	}
	return false
}

// SealedKey is a room key sealed with age to one member's recipient. The
// store never sees the plaintext key.
type SealedKey struct {
	Room   string `json:"room"`
	Handle string `json:"handle"`
	Epoch  int64  `json:"epoch"`
	Sealed []byte `json:"sealed"`
}

// Store is the control-plane state: SQLite on a single node, replicated
// JetStream KV in a cluster. Methods that change membership are atomic.
type Store interface {
	CreateMember(ctx context.Context, m Member) error
	Member(ctx context.Context, handle string) (Member, error)
	HasAdmin(ctx context.Context) (bool, error)
	// CreateFirstAdmin creates m as an admin only if no admin exists yet,
	// atomically; ErrExists otherwise.
	CreateFirstAdmin(ctx context.Context, m Member) error

	CreateRoom(ctx context.Context, r Room) error
	Room(ctx context.Context, id string) (Room, error)
	RoomsOf(ctx context.Context, handle string) ([]Room, error)
	// AllRooms feeds the bus ACLs: every room with its members.
	AllRooms(ctx context.Context) ([]Room, error)
	AllMembers(ctx context.Context) ([]Member, error)
	AddRoomMember(ctx context.Context, room, handle string) error
	// RemoveRoomMember drops the member and its sealed key and bumps the
	// room's key epoch, in one step; it returns the new epoch.
	RemoveRoomMember(ctx context.Context, room, handle string) (int64, error)

	PutSealedKey(ctx context.Context, k SealedKey) error
	SealedKey(ctx context.Context, room, handle string) (SealedKey, error)

	AddBlob(ctx context.Context, sha256, room string, size int64) error
	BlobInRoom(ctx context.Context, sha256, room string) (bool, error)

	// UseNonce records key until expires; ErrReplay if it is already there.
	UseNonce(ctx context.Context, key string, expires time.Time) error
	Close() error
}
