package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/unibus/unibus/internal/ids"
)

// Message headers. The epoch says which room key sealed the payload; From
// is the sender's handle, bound to the ciphertext (so only a key holder can
// set it), but not a signature: any room member could claim any name.
const (
	HeaderEpoch = "Unibus-Key-Epoch"
	HeaderFrom  = "Unibus-From"
)

// Subject is where a room's topic is published.
func Subject(room, topic string) string { return ids.RoomSubject(room) + "." + topic }

// NATSOptions authenticate as the member (its nkey) and keep replies in its
// own inbox, which is all bus-auth enforce lets it subscribe to besides its
// rooms.
func (id *Identity) NATSOptions() []nats.Option {
	return []nats.Option{
		nats.Nkey(id.SignPub(), id.Sign.Sign),
		nats.CustomInboxPrefix(ids.InboxPrefix(id.Handle)),
		nats.Name("unibus " + id.Handle),
	}
}

// aad binds subject, epoch and sender to the ciphertext: a message cannot
// be moved to another room or topic, or re-labelled, without failing to open.
func aad(subject string, epoch int64, from string) []byte {
	return fmt.Appendf(nil, "unibus-msg-v1\n%s\n%d\n%s\n", subject, epoch, from)
}

// SealMessage encrypts plaintext for subject with the room key.
func SealMessage(k RoomKey, from, subject string, plaintext []byte) *nats.Msg {
	aead, _ := chacha20poly1305.NewX(k.Key[:])
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	msg := nats.NewMsg(subject)
	msg.Data = aead.Seal(nonce, nonce, plaintext, aad(subject, k.Epoch, from))
	msg.Header.Set(HeaderEpoch, strconv.FormatInt(k.Epoch, 10))
	msg.Header.Set(HeaderFrom, from)
	return msg
}

// ErrEpoch is returned for a message sealed under another key epoch.
var ErrEpoch = errors.New("message sealed with another key epoch")

// OpenMessage decrypts a message with the room key and returns the sender
// and plaintext.
func OpenMessage(k RoomKey, msg *nats.Msg) (from string, plaintext []byte, err error) {
	epoch, err := strconv.ParseInt(msg.Header.Get(HeaderEpoch), 10, 64)
	if err != nil {
		return "", nil, errors.New("message without a key epoch header")
	}
	if epoch != k.Epoch {
		return "", nil, fmt.Errorf("%w: message epoch %d, key epoch %d", ErrEpoch, epoch, k.Epoch)
	}
	if len(msg.Data) < chacha20poly1305.NonceSizeX {
		return "", nil, errors.New("message too short")
	}
	from = msg.Header.Get(HeaderFrom)
	aead, _ := chacha20poly1305.NewX(k.Key[:])
	nonce, ct := msg.Data[:chacha20poly1305.NonceSizeX], msg.Data[chacha20poly1305.NonceSizeX:]
	plaintext, err = aead.Open(nil, nonce, ct, aad(msg.Subject, epoch, from))
	if err != nil {
		return "", nil, errors.New("message does not open with the room key (tampered, or another room's)")
	}
	return from, plaintext, nil
}
