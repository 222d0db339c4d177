package membershipd

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/membershipd/store"
)

func selfVouch(t testing.TB, id *client.Identity) string {
	t.Helper()
	v, err := id.SelfVouch()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVouchedMembersShareKeys is the happy path on the real daemon: alice
// (bootstrapped, self-vouched) added bob and carol; bob trusts nobody yet,
// so he may not seal to carol; once he pins alice he can, and also to a
// member added by an admin alice added (a chain he never pinned).
func TestVouchedMembersShareKeys(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()

	room, bobKey, err := cp.bob.CreateRoomWithKey(ctx, "bobs")
	if err != nil {
		t.Fatalf("bob creates a room (sealed to himself only): %v", err)
	}
	_, err = cp.bob.AddMemberWithKey(ctx, room.ID, "carol")
	var untrusted *client.UntrustedError
	if !errors.As(err, &untrusted) || untrusted.Handle != "carol" {
		t.Fatalf("bob adds carol without pinning alice: %v; want an UntrustedError for carol", err)
	}
	if r, _ := cp.bob.Room(ctx, room.ID); slices.Contains(r.Members, "carol") {
		t.Fatal("the refused add still put carol in the room")
	}

	alice := cp.alice.Identity()
	if _, err := cp.bob.Identity().Trust("alice", alice.SignPub()); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.bob.AddMemberWithKey(ctx, room.ID, "carol"); err != nil {
		t.Fatalf("bob, pinning alice, adds carol: %v", err)
	}
	carolKey, err := cp.carol.RoomKey(ctx, room.ID)
	if err != nil || carolKey.Key != bobKey.Key {
		t.Fatalf("carol opens the room key: %v (same key: %v)", err, carolKey.Key == bobKey.Key)
	}

	// alice adds dave as an admin; dave adds erin. bob trusts erin through
	// dave's record, which alice vouched for.
	daveID := mustIdentity(t, "dave")
	if _, err := cp.alice.CreateMember(ctx, client.Member{Handle: "dave", Role: "admin", SignPub: daveID.SignPub(), AgeRecipient: daveID.Recipient()}); err != nil {
		t.Fatal(err)
	}
	dave := client.New("http://"+cp.d.HTTPAddr(), daveID)
	erinID := mustIdentity(t, "erin")
	if _, err := dave.CreateMember(ctx, client.Member{Handle: "erin", SignPub: erinID.SignPub(), AgeRecipient: erinID.Recipient()}); err != nil {
		t.Fatalf("dave (admin) adds erin: %v", err)
	}
	got, err := cp.bob.Member(ctx, "erin")
	if err != nil || got.VouchedBy != "dave" || got.VouchSig == "" {
		t.Fatalf("erin's record: %+v, %v; want a vouch by dave", got, err)
	}
	if _, err := cp.bob.AddMemberWithKey(ctx, room.ID, "erin"); err != nil {
		t.Fatalf("bob adds erin through alice -> dave -> erin: %v", err)
	}
	newKey, err := cp.bob.Rekey(ctx, room.ID)
	if err != nil {
		t.Fatalf("bob re-keys the room: %v", err)
	}
	erin := client.New("http://"+cp.d.HTTPAddr(), erinID)
	for _, c := range []*client.Client{cp.carol, erin} {
		k, err := c.RoomKey(ctx, room.ID)
		if err != nil || k.Key != newKey.Key {
			t.Errorf("%s opens the new key: %v", c.Identity().Handle, err)
		}
	}
}

// TestCreateMemberNeedsVouch: POST /v1/members without a vouch by the
// requesting admin, or with one that does not verify, is a 400 with a code,
// and creates nothing.
func TestCreateMemberNeedsVouch(t *testing.T) {
	cp := newControlPlane(t)
	alice, bob := cp.alice.Identity(), cp.bob.Identity()
	dave := mustIdentity(t, "dave")
	rec := client.Member{Handle: "dave", Role: "member", SignPub: dave.SignPub(), AgeRecipient: dave.Recipient()}
	signedBy := func(id *client.Identity, m client.Member) client.Member {
		m.VouchedBy = id.Handle
		sig, err := id.Vouch(m)
		if err != nil {
			t.Fatal(err)
		}
		m.VouchSig = sig
		return m
	}
	random := make([]byte, 64)
	rand.Read(random)
	forged := rec
	forged.VouchedBy, forged.VouchSig = "alice", base64.RawURLEncoding.EncodeToString(random)
	otherRecipient := signedBy(alice, rec)
	otherRecipient.AgeRecipient = mustIdentity(t, "x").Recipient()
	aliceSignsAsBob := signedBy(alice, rec)
	aliceSignsAsBob.VouchedBy = "bob"
	malformed := rec
	malformed.VouchedBy, malformed.VouchSig = "alice", "short"

	cases := []struct {
		name string
		m    client.Member
		code string
	}{
		{"no vouch", rec, "vouch_required"},
		{"vouched_by without a signature", client.Member{Handle: rec.Handle, Role: rec.Role, SignPub: rec.SignPub, AgeRecipient: rec.AgeRecipient, VouchedBy: "alice"}, "vouch_required"},
		{"forged signature", forged, "bad_vouch"},
		{"vouch by bob, a valid signature of someone else", signedBy(bob, rec), "bad_vouch"},
		{"alice's signature, named as bob's", aliceSignsAsBob, "bad_vouch"},
		{"alice's vouch for another recipient", otherRecipient, "bad_vouch"},
		{"malformed signature", malformed, "bad_request"},
	}
	for _, c := range cases {
		body, _ := json.Marshal(map[string]string{"handle": c.m.Handle, "role": c.m.Role, "sign_pub": c.m.SignPub,
			"age_recipient": c.m.AgeRecipient, "vouched_by": c.m.VouchedBy, "vouch_sig": c.m.VouchSig})
		req := signedRequest(t, cp.d, alice, "POST", "/v1/members", "application/json", body, time.Now())
		if status, code := send(t, req, body); status != 400 || code != c.code {
			t.Errorf("%s: %d %s; want 400 %s", c.name, status, code, c.code)
		}
	}
	if _, err := cp.alice.Member(context.Background(), "dave"); err == nil {
		t.Fatal("a refused request created dave")
	}
	good := signedBy(alice, rec)
	if _, err := cp.alice.CreateMember(context.Background(), good); err != nil {
		t.Fatalf("alice's own vouch: %v", err)
	}
}

// TestBootstrapNeedsSelfVouch: the first admin's record must carry its own
// signature; anything else is refused and creates no admin.
func TestBootstrapNeedsSelfVouch(t *testing.T) {
	ctx := context.Background()
	dir := testConfig(t).StateDir
	alice, mallory := mustIdentity(t, "alice"), mustIdentity(t, "mallory")
	forMallory := selfVouch(t, mallory)
	otherRecipient, err := alice.Vouch(client.Member{Handle: "alice", Role: "admin", SignPub: alice.SignPub(), AgeRecipient: mallory.Recipient(), VouchedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"no vouch": "", "mallory's": forMallory, "over another recipient": otherRecipient} {
		if _, err := Bootstrap(ctx, dir, "alice", alice.SignPub(), alice.Recipient(), v); err == nil {
			t.Errorf("bootstrap with %s vouch: accepted", name)
		}
	}
	m, err := Bootstrap(ctx, dir, "alice", alice.SignPub(), alice.Recipient(), selfVouch(t, alice))
	if err != nil {
		t.Fatalf("bootstrap with the right vouch (so no admin was made before): %v", err)
	}
	if m.VouchedBy != "alice" || m.VouchSig == "" {
		t.Fatalf("bootstrapped admin %+v carries no vouch", m)
	}
}

// TestUnvouchedMemberIsNotTrusted: a member from before vouches (no vouch
// in its record, as after the schema migration) gets no room key, even from
// the admin who runs the node.
func TestUnvouchedMemberIsNotTrusted(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	old := mustIdentity(t, "oldtimer")
	if err := cp.d.st().CreateMember(ctx, store.Member{Handle: "oldtimer", Role: store.RoleMember, SignPub: old.SignPub(), AgeRecipient: old.Recipient(), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cp.alice.AddMemberWithKey(ctx, room.ID, "oldtimer")
	if err == nil || !strings.Contains(err.Error(), "member oldtimer: record is not vouched for by an admin you trust (oldtimer's record carries no vouch") {
		t.Fatalf("alice adds an unvouched member: %v; want a refusal", err)
	}
}
