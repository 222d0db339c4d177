// Package reqsign is the signed-request format of the control-plane API,
// shared by membershipd (which verifies) and the client package (which signs).
//
// A request carries one header:
//
//	Authorization: Unibus-Ed25519 handle=alice,ts=1767225600,nonce=<b64url>,sha256=<b64url>,len=<bytes>,sig=<b64url>
//
// The signature is Ed25519, by the member's signing key, over [Canonical]:
// the method, the request URI exactly as sent, the body's SHA-256 and
// length, the timestamp, the nonce and the handle. The body's digest and
// length travel in the header, so the server verifies the signature before
// it reads a byte of the body, and then reads at most the signed length and
// refuses a body that is not the one signed ([Auth.ReadBody]). The server
// rejects a bad signature, a timestamp outside its window, and a nonce it
// has seen.
package reqsign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/internal/ids"
)

// Scheme is the Authorization scheme.
const Scheme = "Unibus-Ed25519"

// version names the canonical string; a change to what is signed changes it,
// so a signature of one format never verifies as another.
const version = "unibus-request-v2"

// maxHeader bounds the header so parsing work is bounded too.
const maxHeader = 512

// Auth is a parsed Authorization header.
type Auth struct {
	Handle     string
	Timestamp  int64 // Unix seconds
	Nonce      string
	BodySHA256 [32]byte // of the body the signer sent
	BodyLen    int64    // bytes of that body
	Sig        []byte
}

// b64 is strict: a value has one spelling (no stray trailing bits).
var b64 = base64.RawURLEncoding.Strict()

var fields = []string{"handle", "ts", "nonce", "sha256", "len", "sig"}

var errFields = errors.New("authorization must have handle, ts, nonce, sha256, len and sig, in that order")

// Parse reads an Authorization header value. It is strict: the scheme, then
// exactly the six fields in order, each once, each in its one spelling;
// anything else is an error.
func Parse(header string) (Auth, error) {
	if len(header) > maxHeader {
		return Auth{}, errors.New("authorization header too long")
	}
	rest, ok := strings.CutPrefix(header, Scheme+" ")
	if !ok {
		return Auth{}, fmt.Errorf("authorization scheme must be %s", Scheme)
	}
	// Only printable ASCII past the scheme: Go's base64 decoder skips CR
	// and LF even in strict mode, which would give a field two spellings.
	for i := 0; i < len(rest); i++ {
		if rest[i] <= ' ' || rest[i] >= 0x7f {
			return Auth{}, errors.New("authorization header holds a space or a control character after the scheme")
		}
	}
	parts := strings.Split(rest, ",")
	if len(parts) != len(fields) {
		return Auth{}, errFields
	}
	var a Auth
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != fields[i] {
			return Auth{}, errFields
		}
		switch k {
		case "handle":
			if err := ids.ValidHandle(v); err != nil {
				return Auth{}, err
			}
			a.Handle = v
		case "ts":
			ts, ok := decimal(v, 12)
			if !ok || ts == 0 {
				return Auth{}, errors.New("authorization ts must be Unix seconds")
			}
			a.Timestamp = ts
		case "nonce":
			raw, err := b64.DecodeString(v)
			if err != nil || len(raw) < 16 || len(raw) > 64 {
				return Auth{}, errors.New("authorization nonce must be 16 to 64 random bytes, base64url without padding")
			}
			a.Nonce = v
		case "sha256":
			sum, err := b64.DecodeString(v)
			if err != nil || len(sum) != sha256.Size {
				return Auth{}, errors.New("authorization sha256 must be the body's 32-byte SHA-256, base64url without padding")
			}
			a.BodySHA256 = [32]byte(sum)
		case "len":
			n, ok := decimal(v, 15)
			if !ok {
				return Auth{}, errors.New("authorization len must be the body's length in bytes")
			}
			a.BodyLen = n
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

// decimal reads a non-negative integer of at most maxDigits digits in its
// one spelling: digits only, no sign, no leading zero.
func decimal(s string, maxDigits int) (int64, bool) {
	if s == "" || len(s) > maxDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// String is the header value.
func (a Auth) String() string {
	return fmt.Sprintf("%s handle=%s,ts=%d,nonce=%s,sha256=%s,len=%d,sig=%s", Scheme,
		a.Handle, a.Timestamp, a.Nonce, b64.EncodeToString(a.BodySHA256[:]), a.BodyLen, b64.EncodeToString(a.Sig))
}

// Canonical is the byte string that is signed: every field of a but the
// signature, with the method and request URI. None of them can hold a
// newline (the header is parsed strictly; net/http refuses one in the
// request line), so the fields cannot run into each other.
func Canonical(method, requestURI string, a Auth) []byte {
	return fmt.Appendf(nil, "%s\n%s\n%s\n%s\n%d\n%d\n%s\n%s\n", version,
		method, requestURI, hex.EncodeToString(a.BodySHA256[:]), a.BodyLen, a.Timestamp, a.Nonce, a.Handle)
}

// Sign returns the Authorization header value for a request.
func Sign(kp nkeys.KeyPair, handle, method, requestURI string, body []byte, now time.Time) (string, error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	a := Auth{Handle: handle, Timestamp: now.Unix(), Nonce: b64.EncodeToString(nonce),
		BodySHA256: sha256.Sum256(body), BodyLen: int64(len(body))}
	sig, err := kp.Sign(Canonical(method, requestURI, a))
	if err != nil {
		return "", err
	}
	a.Sig = sig
	return a.String(), nil
}

// Errors of Verify and ReadBody, for the server's 401 reasons.
var (
	ErrStale        = errors.New("timestamp outside the accepted window")
	ErrBadSignature = errors.New("bad signature")
	ErrBodyMismatch = errors.New("the body is not the one signed (length or SHA-256 differ)")
)

// Verify checks a's timestamp against now within ±window and its signature
// against signPub, the member's nkey public key. It needs no body: the
// signature covers the body's digest and length as the header claims them,
// and [Auth.ReadBody] then holds the body to that claim. Nonce reuse is the
// caller's to check, after both: only a valid request may consume a nonce.
func Verify(signPub string, a Auth, method, requestURI string, now time.Time, window time.Duration) error {
	pub, err := PublicKey(signPub)
	if err != nil {
		return err
	}
	return VerifyKey(pub, a, method, requestURI, now, window)
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
func VerifyKey(pub ed25519.PublicKey, a Auth, method, requestURI string, now time.Time, window time.Duration) error {
	if d := now.Sub(time.Unix(a.Timestamp, 0)); d > window || d < -window {
		return ErrStale
	}
	if !ed25519.Verify(pub, Canonical(method, requestURI, a), a.Sig) {
		return ErrBadSignature
	}
	return nil
}

// readChunk is how much of a body is read, and hashed, at a time.
const readChunk = 32 << 10

// ReadBody reads the body a signed, hashing it as it arrives: exactly
// a.BodyLen bytes, never more, into one buffer. A body that is shorter,
// longer or different is ErrBodyMismatch; a read error is returned as is.
// Call it after VerifyKey, so the length it allocates for is a signed one.
func (a Auth) ReadBody(r io.Reader) ([]byte, error) {
	body := make([]byte, a.BodyLen)
	h := sha256.New()
	for off := 0; off < len(body); {
		n, err := r.Read(body[off:min(off+readChunk, len(body))])
		h.Write(body[off : off+n])
		off += n
		if errors.Is(err, io.EOF) && off < len(body) {
			return nil, ErrBodyMismatch
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	// One byte more than signed is a different body.
	var extra [1]byte
	if n, err := io.ReadFull(r, extra[:]); n > 0 {
		return nil, ErrBodyMismatch
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if [32]byte(h.Sum(nil)) != a.BodySHA256 {
		return nil, ErrBodyMismatch
	}
	return body, nil
}
