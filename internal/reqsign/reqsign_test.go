package reqsign

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nats-io/nkeys"
)

func TestSignVerify(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"name":"ops"}`)
	h, err := Sign(kp, "alice", "POST", "/v1/rooms", body, now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parse(h)
	if err != nil {
		t.Fatalf("Parse(Sign()) = %v", err)
	}
	if a.BodySHA256 != sha256.Sum256(body) || a.BodyLen != int64(len(body)) {
		t.Fatalf("header claims sha256 %x len %d; want the body's", a.BodySHA256, a.BodyLen)
	}
	if err := Verify(pub, a, "POST", "/v1/rooms", now, time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(pub, a, "POST", "/v1/rooms", now.Add(61*time.Second), time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("61s late: %v; want ErrStale", err)
	}
	if err := Verify(pub, a, "POST", "/v1/rooms", now.Add(-61*time.Second), time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("61s early: %v; want ErrStale", err)
	}
}

// TestEverySignedFieldMatters keeps one signature and changes one signed
// field at a time: each change must fail verification.
func TestEverySignedFieldMatters(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"name":"ops"}`)
	h, err := Sign(kp, "alice", "POST", "/v1/rooms", body, now)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Parse(mustSign(t, kp, "alice", "POST", "/v1/rooms", nil, now))
	tests := []struct {
		name        string
		method, uri string
		change      func(*Auth)
	}{
		{"method", "PUT", "/v1/rooms", nil},
		{"uri path", "POST", "/v1/room", nil},
		{"uri query", "POST", "/v1/rooms?x=1", nil},
		{"body sha256", "POST", "/v1/rooms", func(a *Auth) { a.BodySHA256 = sha256.Sum256([]byte(`{"name":"x"}`)) }},
		{"body len", "POST", "/v1/rooms", func(a *Auth) { a.BodyLen++ }},
		{"ts", "POST", "/v1/rooms", func(a *Auth) { a.Timestamp++ }},
		{"nonce", "POST", "/v1/rooms", func(a *Auth) { a.Nonce = other.Nonce }},
		{"handle", "POST", "/v1/rooms", func(a *Auth) { a.Handle = "bob" }},
	}
	for _, tt := range tests {
		a := signed
		a.Sig = bytes.Clone(signed.Sig)
		if tt.change != nil {
			tt.change(&a)
		}
		// Through the header, as the server sees it.
		a, err := Parse(a.String())
		if err != nil {
			t.Fatalf("%s: changed header does not parse: %v", tt.name, err)
		}
		if err := Verify(pub, a, tt.method, tt.uri, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Errorf("changed %s: %v; want ErrBadSignature", tt.name, err)
		}
	}
	if err := Verify(pub, signed, "POST", "/v1/rooms", now, time.Minute); err != nil {
		t.Fatalf("the unchanged request no longer verifies: %v", err)
	}
}

// TestReadBody: the body is held to the signed digest and length.
func TestReadBody(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	body := bytes.Repeat([]byte("unibus "), 20000) // several read chunks
	a, _ := Parse(mustSign(t, kp, "alice", "PUT", "/v1/blobs/x", body, time.Now()))
	got, err := a.ReadBody(iotest.OneByteReader(bytes.NewReader(body)))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the signed body: %d bytes, %v", len(got), err)
	}
	flipped := bytes.Clone(body)
	flipped[len(flipped)/2] ^= 1
	for name, r := range map[string]io.Reader{
		"one byte changed": bytes.NewReader(flipped),
		"truncated":        bytes.NewReader(body[:len(body)-1]),
		"one byte more":    io.MultiReader(bytes.NewReader(body), strings.NewReader("x")),
		"empty":            bytes.NewReader(nil),
	} {
		if _, err := a.ReadBody(r); !errors.Is(err, ErrBodyMismatch) {
			t.Errorf("%s: %v; want ErrBodyMismatch", name, err)
		}
	}
	broken := errors.New("connection reset")
	if _, err := a.ReadBody(iotest.ErrReader(broken)); !errors.Is(err, broken) {
		t.Errorf("read error: %v; want it returned", err)
	}
	empty, _ := Parse(mustSign(t, kp, "alice", "GET", "/v1/rooms", nil, time.Now()))
	if got, err := empty.ReadBody(bytes.NewReader(nil)); err != nil || len(got) != 0 {
		t.Errorf("empty body: %q, %v", got, err)
	}
	if _, err := empty.ReadBody(strings.NewReader("x")); !errors.Is(err, ErrBodyMismatch) {
		t.Errorf("a body where none was signed: %v; want ErrBodyMismatch", err)
	}
}

func mustSign(t *testing.T, kp nkeys.KeyPair, handle, method, uri string, body []byte, now time.Time) string {
	t.Helper()
	h, err := Sign(kp, handle, method, uri, body, now)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseRejects(t *testing.T) {
	const digest = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" // SHA-256 of nothing
	good := "Unibus-Ed25519 handle=alice,ts=1800000000,nonce=AAAAAAAAAAAAAAAAAAAAAA,sha256=" + digest + ",len=0,sig=" + strings.Repeat("A", 86)
	if _, err := Parse(good); err != nil {
		t.Fatalf("good header: %v", err)
	}
	v1 := "Unibus-Ed25519 handle=alice,ts=1800000000,nonce=AAAAAAAAAAAAAAAAAAAAAA,sig=" + strings.Repeat("A", 86)
	for _, h := range []string{
		"",
		"Bearer x",
		v1, // the v1 header, without the body's digest and length
		// base64 decoding skips CR and LF: a field with one inside would
		// have a second spelling (found by FuzzParse).
		strings.Replace(good, ",sig=AAAA", ",sig=AA\nAA", 1),
		strings.Replace(good, "nonce=AAAA", "nonce=AA\rAA", 1),
		strings.Replace(good, ",len=0", ",len=0 ", 1),
		strings.Replace(good, "Unibus-Ed25519 ", "Unibus-Ed25519  ", 1),
		strings.Replace(good, "handle=alice", "handle=Alice", 1),
		strings.Replace(good, "handle=alice,ts", "ts", 1),
		strings.Replace(good, "ts=1800000000", "ts=-5", 1),
		strings.Replace(good, "ts=1800000000", "ts=+1800000000", 1),
		strings.Replace(good, "ts=1800000000", "ts=01800000000", 1),
		strings.Replace(good, "ts=1800000000", "ts=0", 1),
		strings.Replace(good, "nonce=AAAAAAAAAAAAAAAAAAAAAA", "nonce=AAAA", 1),
		strings.Replace(good, "nonce=AAAAAAAAAAAAAAAAAAAAAA", "nonce=AAAAAAAAAAAAAAAAAAAAAA==", 1),
		strings.Replace(good, digest, digest[:42], 1),
		strings.Replace(good, digest, digest+"=", 1),
		strings.Replace(good, digest, strings.Repeat("A", 44), 1),
		strings.Replace(good, "len=0", "len=", 1),
		strings.Replace(good, "len=0", "len=-1", 1),
		strings.Replace(good, "len=0", "len=+1", 1),
		strings.Replace(good, "len=0", "len=01", 1),
		strings.Replace(good, "len=0", "len=1e3", 1),
		strings.Replace(good, "len=0", "len=1000000000000000", 1),
		strings.Replace(good, "sha256="+digest+",len=0", "len=0,sha256="+digest, 1),
		good[:len(good)-1],
		good + ",extra=1",
		good + strings.Repeat("A", 600),
	} {
		if _, err := Parse(h); err == nil {
			t.Errorf("Parse(%q) accepted", h)
		}
	}
}

// FuzzParse: the parser never panics, and whatever it accepts prints back
// to a header that parses to the same value.
func FuzzParse(f *testing.F) {
	kp, _ := nkeys.CreateUser()
	h, _ := Sign(kp, "alice", "GET", "/v1/rooms", nil, time.Unix(1_800_000_000, 0))
	f.Add(h)
	h, _ = Sign(kp, "alice", "PUT", "/v1/blobs/x", []byte("blob"), time.Unix(1_800_000_000, 0))
	f.Add(h)
	f.Add("Unibus-Ed25519 handle=a,ts=1,nonce=,sha256=,len=,sig=")
	f.Add("Unibus-Ed25519 handle=bob,ts=99999999999,nonce=AAAAAAAAAAAAAAAAAAAAAA,sha256=,len=0,sig=")
	f.Fuzz(func(t *testing.T, header string) {
		a, err := Parse(header)
		if err != nil {
			return
		}
		if a.String() != header {
			t.Fatalf("accepted %q, which is not the one spelling %q", header, a.String())
		}
		b, err := Parse(a.String())
		if err != nil {
			t.Fatalf("accepted %q but not its own rendering %q: %v", header, a.String(), err)
		}
		if a.String() != b.String() {
			t.Fatalf("round trip changed %q to %q", a.String(), b.String())
		}
	})
}
