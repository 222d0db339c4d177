// Package ids validates the names that cross the control-plane API and end
// up in NATS subjects, SQL keys and file paths: member handles, room ids and
// blob digests. Anything that passes is safe in all three places.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ValidHandle: 1 to 32 of a-z 0-9 _ -, starting with a letter. Handles are
// subject tokens (inbox prefixes) and certificate CNs, so no dots, no
// wildcards, no upper case.
func ValidHandle(h string) error {
	if len(h) == 0 || len(h) > 32 {
		return fmt.Errorf("handle %q: must be 1 to 32 characters", h)
	}
	if h[0] < 'a' || h[0] > 'z' {
		return fmt.Errorf("handle %q: must start with a lower-case letter", h)
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("handle %q: only a-z, 0-9, _ and - are allowed", h)
		}
	}
	return nil
}

// RoomIDLen is the length of a room id: 16 lower-case hex digits.
const RoomIDLen = 16

// NewRoomID returns a random room id.
func NewRoomID() string {
	b := make([]byte, RoomIDLen/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ValidRoomID accepts what NewRoomID makes.
func ValidRoomID(id string) error {
	if len(id) != RoomIDLen || !isLowerHex(id) {
		return fmt.Errorf("room id %q: must be %d lower-case hex digits", id, RoomIDLen)
	}
	return nil
}

// ValidSHA256 accepts a lower-case hex SHA-256 digest.
func ValidSHA256(s string) error {
	if len(s) != 64 || !isLowerHex(s) {
		return fmt.Errorf("blob id %q: must be a SHA-256 digest in 64 lower-case hex digits", s)
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// RoomSubject is the subject prefix of a room: messages go to
// RoomSubject(id) + "." + topic, and ACLs allow RoomSubject(id) + ".>".
func RoomSubject(id string) string { return "unibus.room." + id }

// InboxPrefix is a member's own reply-inbox prefix. Under bus-auth enforce
// a member may subscribe only to its own, so it cannot read others' replies.
func InboxPrefix(handle string) string { return "_INBOX." + handle }
