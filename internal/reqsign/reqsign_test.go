package reqsign

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
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
	sum := sha256.Sum256(body)
	if err := Verify(pub, a, "POST", "/v1/rooms", sum, now, time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Every signed part matters.
	other := sha256.Sum256([]byte(`{"name":"x"}`))
	for name, err := range map[string]error{
		"method": Verify(pub, a, "PUT", "/v1/rooms", sum, now, time.Minute),
		"path":   Verify(pub, a, "POST", "/v1/rooms?x=1", sum, now, time.Minute),
		"body":   Verify(pub, a, "POST", "/v1/rooms", other, now, time.Minute),
		"handle": Verify(pub, Auth{Handle: "bob", Timestamp: a.Timestamp, Nonce: a.Nonce, Sig: a.Sig}, "POST", "/v1/rooms", sum, now, time.Minute),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("changed %s: %v; want ErrBadSignature", name, err)
		}
	}
	if err := Verify(pub, a, "POST", "/v1/rooms", sum, now.Add(61*time.Second), time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("61s late: %v; want ErrStale", err)
	}
}

func TestParseRejects(t *testing.T) {
	good := "Unibus-Ed25519 handle=alice,ts=1800000000,nonce=AAAAAAAAAAAAAAAAAAAAAA,sig=" + strings.Repeat("A", 86)
	if _, err := Parse(good); err != nil {
		t.Fatalf("good header: %v", err)
	}
	for _, h := range []string{
		"",
		"Bearer x",
		strings.Replace(good, "Unibus-Ed25519 ", "Unibus-Ed25519  ", 1),
		strings.Replace(good, "handle=alice", "handle=Alice", 1),
		strings.Replace(good, "handle=alice,ts", "ts", 1),
		strings.Replace(good, "ts=1800000000", "ts=-5", 1),
		strings.Replace(good, "nonce=AAAAAAAAAAAAAAAAAAAAAA", "nonce=AAAA", 1),
		strings.Replace(good, "nonce=AAAAAAAAAAAAAAAAAAAAAA", "nonce=AAAAAAAAAAAAAAAAAAAAAA==", 1),
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
	f.Add("Unibus-Ed25519 handle=a,ts=1,nonce=,sig=")
	f.Add("Unibus-Ed25519 handle=bob,ts=99999999999,nonce=AAAAAAAAAAAAAAAAAAAAAA,sig=")
	f.Fuzz(func(t *testing.T, header string) {
		a, err := Parse(header)
		if err != nil {
			return
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
