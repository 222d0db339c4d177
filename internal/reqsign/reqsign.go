// Package reqsign is the signed-request format of the control-plane API,
// shared by membershipd (which verifies) and the client package (which signs).
//
// A request carries one header:
//
//	Authorization: Unibus-Ed25519 handle=alice,ts=1767225600,nonce=<b64url>,sig=<b64url>
//
// The signature is Ed25519, by the member's signing key, over [Canonical]:
// the method, the request URI exactly as sent, the SHA-256 of the body, the
// timestamp, the nonce and the handle. The server rejects a bad signature, a
// timestamp outside its window, and a nonce it has seen.
package reqsign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/internal/ids"
)

// Scheme is the Authorization scheme.
const Scheme = "Unibus-Ed25519"

// maxHeader bounds the header so parsing work is bounded too.
const maxHeader = 512

// Auth is a parsed Authorization header.
type Auth struct {
	Handle    string
	Timestamp int64 // Unix seconds
	Nonce     string
	Sig       []byte
}

var b64 = base64.RawURLEncoding

// Parse reads an Authorization header value. It is strict: the scheme, then
// exactly the four fields in order, each once; anything else is an error.
func Parse(header string) (Auth, error) {
	if len(header) > maxHeader {
		return Auth{}, errors.New("authorization header too long")
	}
	rest, ok := strings.CutPrefix(header, Scheme+" ")
	if !ok {
		return Auth{}, fmt.Errorf("authorization scheme must be %s", Scheme)
	}
	parts := strings.Split(rest, ",")
	want := []string{"handle", "ts", "nonce", "sig"}
	if len(parts) != len(want) {
		return Auth{}, errors.New("authorization must have handle, ts, nonce and sig, in that order")
	}
	var a Auth
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != want[i] {
			return Auth{}, errors.New("authorization must have handle, ts, nonce and sig, in that order")
		}
		switch k {
		case "handle":
			if err := ids.ValidHandle(v); err != nil {
				return Auth{}, err
			}
			a.Handle = v
		case "ts":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts <= 0 || len(v) > 12 {
				return Auth{}, errors.New("authorization ts must be Unix seconds")
			}
			a.Timestamp = ts
		case "nonce":
			raw, err := b64.DecodeString(v)
			if err != nil || len(raw) < 16 || len(raw) > 64 {
				return Auth{}, errors.New("authorization nonce must be 16 to 64 random bytes, base64url without padding")
			}
			a.Nonce = v
		case "sig":
			sig, err := b64.DecodeString(v)
			if err != nil || len(sig) != 64 {
				return Auth{}, errors.New("authorization sig must be a 64-byte Ed25519 signature, base64url without padding")
			}
			a.Sig = sig
		}
	}
	return a, nil
}

// String is the header value.
func (a Auth) String() string {
	return fmt.Sprintf("%s handle=%s,ts=%d,nonce=%s,sig=%s", Scheme, a.Handle, a.Timestamp, a.Nonce, b64.EncodeToString(a.Sig))
}

// Canonical is the byte string that is signed. The body is represented by
// its SHA-256, so a signature covers the body without the server buffering
// twice.
func Canonical(method, requestURI string, bodySHA256 [32]byte, a Auth) []byte {
	return fmt.Appendf(nil, "unibus-request-v1\n%s\n%s\n%s\n%d\n%s\n%s\n",
		method, requestURI, hex.EncodeToString(bodySHA256[:]), a.Timestamp, a.Nonce, a.Handle)
}

// Sign returns the Authorization header value for a request.
func Sign(kp nkeys.KeyPair, handle, method, requestURI string, body []byte, now time.Time) (string, error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	a := Auth{Handle: handle, Timestamp: now.Unix(), Nonce: b64.EncodeToString(nonce)}
	sig, err := kp.Sign(Canonical(method, requestURI, sha256.Sum256(body), a))
	if err != nil {
		return "", err
	}
	a.Sig = sig
	return a.String(), nil
}

// Errors of Verify, for the server's 401 reasons.
var (
	ErrStale        = errors.New("timestamp outside the accepted window")
	ErrBadSignature = errors.New("bad signature")
)

// Verify checks a's timestamp against now within ±window and its signature
// against signPub, the member's nkey public key. Nonce reuse is the caller's
// to check, after Verify: only a valid request may consume a nonce.
func Verify(signPub string, a Auth, method, requestURI string, bodySHA256 [32]byte, now time.Time, window time.Duration) error {
	pub, err := PublicKey(signPub)
	if err != nil {
		return err
	}
	return VerifyKey(pub, a, method, requestURI, bodySHA256, now, window)
}

// PublicKey decodes an nkey user public key ("U...") to its Ed25519 key,
// so a server can decode each member's key once.
func PublicKey(signPub string) (ed25519.PublicKey, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(signPub))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("signing key %q: not an nkey user public key", signPub)
	}
	return ed25519.PublicKey(raw), nil
}

// VerifyKey is [Verify] with an already decoded key.
func VerifyKey(pub ed25519.PublicKey, a Auth, method, requestURI string, bodySHA256 [32]byte, now time.Time, window time.Duration) error {
	if d := now.Sub(time.Unix(a.Timestamp, 0)); d > window || d < -window {
		return ErrStale
	}
	if !ed25519.Verify(pub, Canonical(method, requestURI, bodySHA256, a), a.Sig) {
		return ErrBadSignature
	}
	return nil
}
