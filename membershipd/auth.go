package membershipd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/unibus/unibus/internal/reqsign"
	"github.com/unibus/unibus/membershipd/store"
)

// signatureWindow is how far a request's timestamp may be from the server's
// clock. Nonces are kept a little longer than twice this, so a replay is
// caught by one check or the other.
const (
	signatureWindow = 60 * time.Second
	nonceTTL        = 2*signatureWindow + 5*time.Second
)

// request is a verified signed request: who sent it and its body, with the
// body's SHA-256 (computed as it was read, and equal to the signed one).
type request struct {
	member     store.Member
	body       []byte
	bodySHA256 [32]byte
}

type signedHandler func(w http.ResponseWriter, r *http.Request, req *request)

// signed wraps h with signed-request verification. Every refusal that an
// unauthenticated client can provoke comes before the body is read: header
// syntax, clock, known handle, content type, the claimed size against the
// limit, and the signature itself, which covers the body's SHA-256 and
// length as the header claims them. Only then is the body read, at most the
// signed length, hashing as it streams, and held to the signed digest.
//
// The nonce is consumed last, by a request whose signature verified AND
// whose body is the one signed. A request whose body was cut short or
// altered took no effect, so there is nothing for its nonce to protect:
// it can only ever be completed by someone holding the exact signed body,
// within the timestamp window, and then once. Consuming it earlier would
// put a durable write (the nonce commit) on the path of every broken
// upload, and would let whoever sees a header in flight void the signer's
// request by racing it with a garbage body.
func (d *Daemon) signed(maxBody int64, contentType string, h signedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.controlReady() {
			w.Header().Set("Retry-After", "2")
			writeError(w, http.StatusServiceUnavailable, "starting", "the control-plane store is not ready yet")
			return
		}
		auth := r.Header.Get("Authorization")
		if auth == "" {
			writeError(w, http.StatusUnauthorized, "unauthenticated", "this endpoint needs a signed request (Authorization: "+reqsign.Scheme+" ...)")
			return
		}
		a, err := reqsign.Parse(auth)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "bad_authorization", err.Error())
			return
		}
		now := time.Now()
		if d := now.Sub(time.Unix(a.Timestamp, 0)); d > signatureWindow || d < -signatureWindow {
			writeError(w, http.StatusUnauthorized, "stale_timestamp", "request timestamp is more than 60s away from the server's clock")
			return
		}
		m, err := d.member(r.Context(), a.Handle)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusUnauthorized, "unknown_handle", "no member with this handle")
			return
		}
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			if !hasContentType(r, contentType) {
				writeError(w, http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type must be "+contentType)
				return
			}
		}
		if a.BodyLen > maxBody || r.ContentLength > maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit of "+byteSize(maxBody))
			return
		}
		// A chunked body (ContentLength -1) is held to the signed length
		// as it is read.
		if r.ContentLength >= 0 && r.ContentLength != a.BodyLen {
			writeError(w, http.StatusUnauthorized, "body_mismatch", "Content-Length is not the body length that was signed")
			return
		}
		if err := reqsign.VerifyKey(m.pub, a, r.Method, r.RequestURI, now, signatureWindow); err != nil {
			writeError(w, http.StatusUnauthorized, "bad_signature", "signature does not verify with the member's signing key")
			return
		}
		body, err := a.ReadBody(r.Body)
		if errors.Is(err, reqsign.ErrBodyMismatch) {
			writeError(w, http.StatusUnauthorized, "body_mismatch", "the request body is not the one signed (its SHA-256 or length differ)")
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_body", "could not read the request body")
			return
		}
		err = d.st().UseNonce(r.Context(), a.Handle+":"+a.Nonce, now.Add(nonceTTL))
		if errors.Is(err, store.ErrReplay) {
			writeError(w, http.StatusUnauthorized, "replayed_nonce", "this nonce was already used: a replayed request")
			return
		}
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		h(w, r, &request{member: m.Member, body: body, bodySHA256: a.BodySHA256})
	}
}

// knownMember is a member with its signing key decoded.
type knownMember struct {
	store.Member
	pub ed25519.PublicKey
}

// member looks a handle up, through a cache: every signed request needs
// it, and a member's handle, role and keys never change once created (the
// API has no update or delete; one that adds either must evict here). Only
// found members are cached, so a member created elsewhere (bootstrap,
// another node) is seen at its first request.
func (d *Daemon) member(ctx context.Context, handle string) (knownMember, error) {
	if m, ok := d.members.Load(handle); ok {
		return m.(knownMember), nil
	}
	m, err := d.st().Member(ctx, handle)
	if err != nil {
		return knownMember{}, err
	}
	pub, err := reqsign.PublicKey(m.SignPub)
	if err != nil {
		return knownMember{}, err
	}
	km := knownMember{Member: m, pub: pub}
	d.members.Store(handle, km)
	return km, nil
}

func hasContentType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == want
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

// purgeNonces keeps the SQLite nonce table at a few minutes of traffic (a
// clustered store expires nonces by itself).
func (d *Daemon) purgeNonces(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := d.db.PurgeNonces(ctx, now); err != nil && ctx.Err() == nil {
				d.log.Warn("purge expired nonces", "err", err)
			}
		}
	}
}
