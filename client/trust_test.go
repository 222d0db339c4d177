package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// liar is a control plane that answers GET /v1/members with whatever
// records it is given, and records every sealed key and room member it is
// sent. It checks no signature: it plays a compromised node, or anyone on
// the path of plain HTTP.
type liar struct {
	*httptest.Server
	mu       sync.Mutex
	records  map[string]Member
	room     Room
	ownKey   SealedKey
	uploaded map[string][]byte // handle -> sealed key received
	added    []string          // POST /v1/rooms/{id}/members received
}

const liarRoom = "0123456789abcdef"

func newLiar(t *testing.T, caller *Identity, records map[string]Member, members ...string) *liar {
	t.Helper()
	l := &liar{records: records, uploaded: map[string][]byte{},
		room: Room{ID: liarRoom, Name: "ops", Owner: caller.Handle, KeyEpoch: 1, Members: members}}
	k := NewRoomKey(liarRoom, 1)
	sealed, err := k.Seal(caller.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	l.ownKey = SealedKey{Room: liarRoom, Handle: caller.Handle, Epoch: 1, Sealed: sealed}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/members/{h}", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		m, ok := l.records[r.PathValue("h")]
		l.mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			reply(w, map[string]string{"error": "not found", "code": "not_found"})
			return
		}
		reply(w, m)
	})
	mux.HandleFunc("GET /v1/rooms/{id}", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		reply(w, l.room)
	})
	mux.HandleFunc("GET /v1/rooms/{id}/keys/{h}", func(w http.ResponseWriter, r *http.Request) { reply(w, l.ownKey) })
	mux.HandleFunc("POST /v1/rooms/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Handle string }
		json.NewDecoder(r.Body).Decode(&in)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.added = append(l.added, in.Handle)
		l.room.Members = append(l.room.Members, in.Handle)
		reply(w, l.room)
	})
	mux.HandleFunc("PUT /v1/rooms/{id}/keys/{h}", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Sealed []byte }
		json.NewDecoder(r.Body).Decode(&in)
		l.mu.Lock()
		l.uploaded[r.PathValue("h")] = in.Sealed
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	l.Server = httptest.NewServer(mux)
	t.Cleanup(l.Close)
	return l
}

// cast is the people of the lying-server tests: alice, the first admin,
// pinned by bob, who acts; carol, a member alice added; dan, a plain
// member alice added; dave, an admin alice added; erin, whom dave added;
// mallory, the attacker.
type cast struct {
	alice, bob, carol, dan, dave, erin, mallory *Identity
}

func newCast(t *testing.T) cast {
	t.Helper()
	var c cast
	for _, p := range []struct {
		id   **Identity
		name string
	}{{&c.alice, "alice"}, {&c.bob, "bob"}, {&c.carol, "carol"}, {&c.dan, "dan"}, {&c.dave, "dave"}, {&c.erin, "erin"}, {&c.mallory, "mallory"}} {
		id, err := GenerateIdentity(p.name)
		if err != nil {
			t.Fatal(err)
		}
		*p.id = id
	}
	if _, err := c.bob.Trust("alice", c.alice.SignPub()); err != nil {
		t.Fatal(err)
	}
	return c
}

// record is id's member record with role, vouched for by voucher (nil: no
// vouch).
func record(t *testing.T, id *Identity, role string, voucher *Identity) Member {
	t.Helper()
	m := Member{Handle: id.Handle, Role: role, SignPub: id.SignPub(), AgeRecipient: id.Recipient()}
	if voucher != nil {
		m.VouchedBy = voucher.Handle
		sig, err := voucher.Vouch(m)
		if err != nil {
			t.Fatal(err)
		}
		m.VouchSig = sig
	}
	return m
}

// honest is what a truthful server holds.
func (c cast) honest(t *testing.T) map[string]Member {
	return map[string]Member{
		"alice": record(t, c.alice, "admin", c.alice),
		"bob":   record(t, c.bob, "member", c.alice),
		"carol": record(t, c.carol, "member", c.alice),
		"dan":   record(t, c.dan, "member", c.alice),
		"dave":  record(t, c.dave, "admin", c.alice),
		"erin":  record(t, c.erin, "member", c.dave),
	}
}

// TestHonestServerSeals is the control for the lying-server test: on the
// same fake server, truthful records (pinned admin, and a chain through an
// admin it vouched for) are sealed to and uploaded.
func TestHonestServerSeals(t *testing.T) {
	c := newCast(t)
	ctx := context.Background()
	for _, target := range []*Identity{c.carol, c.erin} {
		l := newLiar(t, c.bob, c.honest(t), "bob", "alice")
		cl := New(l.URL, c.bob)
		if _, err := cl.AddMemberWithKey(ctx, liarRoom, target.Handle); err != nil {
			t.Fatalf("add %s: %v", target.Handle, err)
		}
		if _, err := target.OpenRoomKey(SealedKey{Room: liarRoom, Epoch: 1, Sealed: l.uploaded[target.Handle]}); err != nil {
			t.Fatalf("%s opens what was uploaded for them: %v", target.Handle, err)
		}
		if _, err := cl.Rekey(ctx, liarRoom); err != nil {
			t.Fatalf("rekey with %s: %v", target.Handle, err)
		}
		if len(l.uploaded) != 3 {
			t.Fatalf("rekey uploaded keys for %d members; want 3", len(l.uploaded))
		}
	}
}

// TestLyingServerGetsNoKey: a server that returns an unvetted record for
// carol makes both room add and rekey refuse, with one line naming carol,
// and receives no sealed key at all, not even for the members it told the
// truth about.
func TestLyingServerGetsNoKey(t *testing.T) {
	c := newCast(t)
	ctx := context.Background()
	evil := c.mallory.Recipient()
	random := make([]byte, 64)
	rand.Read(random)

	lies := map[string]func(map[string]Member){
		"attacker's age key under alice's vouch": func(r map[string]Member) {
			m := r["carol"]
			m.AgeRecipient = evil
			r["carol"] = m
		},
		"no vouch": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			r["carol"] = m
		},
		"forged vouch": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient, m.VouchedBy, m.VouchSig = evil, "alice", base64.RawURLEncoding.EncodeToString(random)
			r["carol"] = m
		},
		"vouch by a key nobody pinned": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			m = vouchedAs(t, m, c.mallory, "mallory")
			r["carol"], r["mallory"] = m, record(t, c.mallory, "admin", c.mallory)
		},
		"mallory's key posing as the pinned alice": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			r["carol"] = vouchedAs(t, m, c.mallory, "alice")
			fake := record(t, c.mallory, "admin", nil)
			fake.Handle = "alice"
			r["alice"] = vouchedAs(t, fake, c.mallory, "alice")
		},
		"chain through a non-admin": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			r["carol"] = vouchedAs(t, m, c.dan, "dan")
		},
		"chain through a member the server promoted to admin": func(r map[string]Member) {
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			r["carol"] = vouchedAs(t, m, c.dan, "dan")
			dan := r["dan"]
			dan.Role = "admin"
			r["dan"] = dan
		},
		"self-vouched": func(r map[string]Member) {
			m := record(t, c.mallory, "member", nil)
			m.Handle = "carol"
			r["carol"] = vouchedAs(t, m, c.mallory, "carol")
		},
		"another member's record": func(r map[string]Member) { r["carol"] = r["dave"] },
		"a vouch loop": func(r map[string]Member) {
			x := record(t, c.mallory, "admin", nil)
			x.Handle = "x"
			y := record(t, c.dan, "admin", nil)
			y.Handle = "y"
			r["x"], r["y"] = vouchedAs(t, x, c.dan, "y"), vouchedAs(t, y, c.mallory, "x")
			m := record(t, c.carol, "member", nil)
			m.AgeRecipient = evil
			r["carol"] = vouchedAs(t, m, c.mallory, "x")
		},
	}
	for name, lie := range lies {
		t.Run(name, func(t *testing.T) {
			for _, op := range []string{"room add", "rekey"} {
				records := c.honest(t)
				lie(records)
				// carol before alice: the refusal names the first record
				// that fails, and one lie also forges alice's record.
				members := []string{"bob", "alice"}
				if op == "rekey" {
					members = []string{"bob", "carol", "alice"}
				}
				l := newLiar(t, c.bob, records, members...)
				cl := New(l.URL, c.bob)
				var err error
				if op == "room add" {
					_, err = cl.AddMemberWithKey(ctx, liarRoom, "carol")
				} else {
					_, err = cl.Rekey(ctx, liarRoom)
				}
				var untrusted *UntrustedError
				if !errors.As(err, &untrusted) || untrusted.Handle != "carol" {
					t.Errorf("%s: %v; want a refusal naming carol", op, err)
				} else if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "member carol: record is not vouched for by an admin you trust (") || !strings.HasSuffix(msg, "pin one with unibus trust add)") {
					t.Errorf("%s: refusal %q is not the one-line message", op, msg)
				}
				if len(l.uploaded) != 0 || len(l.added) != 0 {
					var got []string
					for h := range l.uploaded {
						got = append(got, h)
					}
					t.Errorf("%s: the lying server received sealed keys for %v and room adds %v; want none", op, got, l.added)
				}
			}
		})
	}
}

// vouchedAs signs m with signer's key while naming voucher as the admin,
// as a forger would.
func vouchedAs(t *testing.T, m Member, signer *Identity, voucher string) Member {
	t.Helper()
	m.VouchedBy = voucher
	forger := *signer
	forger.Handle = voucher
	sig, err := forger.Vouch(m)
	if err != nil {
		t.Fatal(err)
	}
	m.VouchSig = sig
	return m
}

// TestTrustPinsInIdentityFile: pins survive Marshal and Parse, a changed
// key for a pinned handle is refused, and bad pin lines are errors.
func TestTrustPinsInIdentityFile(t *testing.T) {
	c := newCast(t)
	if added, err := c.bob.Trust("alice", c.alice.SignPub()); added || err != nil {
		t.Fatalf("pinning alice again with the same key: added %v, %v; want a no-op", added, err)
	}
	if _, err := c.bob.Trust("alice", c.mallory.SignPub()); err == nil {
		t.Fatal("alice re-pinned with mallory's key")
	}
	if _, err := c.bob.Trust("bob", c.bob.SignPub()); err == nil {
		t.Fatal("bob pinned himself")
	}
	if _, err := c.bob.Trust("dave", c.dave.Recipient()); err == nil {
		t.Fatal("an age recipient accepted as a signing key")
	}
	back, err := ParseIdentity(c.bob.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Trusted) != 1 || back.Trusted[0] != (TrustedAdmin{"alice", c.alice.SignPub()}) {
		t.Fatalf("pins after Marshal and Parse: %+v", back.Trusted)
	}
	if !back.Untrust("alice") || back.Untrust("alice") || len(back.Trusted) != 0 {
		t.Fatal("Untrust does not drop exactly the pin")
	}
	base := string(c.bob.Marshal())
	for name, line := range map[string]string{
		"one field":    "trust-admin: dave\n",
		"not a key":    "trust-admin: dave " + c.dave.Recipient() + "\n",
		"bad handle":   "trust-admin: Dave! " + c.dave.SignPub() + "\n",
		"pinned twice": "trust-admin: alice " + c.alice.SignPub() + "\n",
		"unknown key":  "trust-admins: dave " + c.dave.SignPub() + "\n",
		"three fields": "trust-admin: dave " + c.dave.SignPub() + " extra\n",
	} {
		if _, err := ParseIdentity([]byte(base + line)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
