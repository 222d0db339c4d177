package vouch

import (
	"errors"
	"testing"

	"github.com/nats-io/nkeys"
)

func mustUser(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub
}

// TestEveryFieldIsCovered: a vouch made for one record fails for a record
// that differs in any one field, and for another key.
func TestEveryFieldIsCovered(t *testing.T) {
	admin, adminPub := mustUser(t)
	_, otherPub := mustUser(t)
	_, bobPub := mustUser(t)
	rec := Record{Handle: "bob", Role: "member", SignPub: bobPub, AgeRecipient: "age1abc", VouchedBy: "alice"}
	sig, err := Sign(admin, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(adminPub, rec, sig); err != nil {
		t.Fatalf("the vouch does not verify for its own record: %v", err)
	}
	changes := map[string]func(*Record){
		"handle":        func(r *Record) { r.Handle = "bobby" },
		"role":          func(r *Record) { r.Role = "admin" },
		"sign_pub":      func(r *Record) { r.SignPub = otherPub },
		"age_recipient": func(r *Record) { r.AgeRecipient = "age1evil" },
		"vouched_by":    func(r *Record) { r.VouchedBy = "mallory" },
	}
	for name, change := range changes {
		r := rec
		change(&r)
		if err := Verify(adminPub, r, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("changed %s: %v; want ErrBadSignature", name, err)
		}
	}
	if err := Verify(otherPub, rec, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another admin's key: %v; want ErrBadSignature", err)
	}
	if err := Verify(adminPub, rec, ""); !errors.Is(err, ErrMissing) {
		t.Errorf("no vouch: %v; want ErrMissing", err)
	}
	if err := Verify(adminPub, rec, "not-base64!"); !errors.Is(err, ErrBadSignature) {
		t.Errorf("garbage vouch: %v; want ErrBadSignature", err)
	}
	if !WellFormed(sig) || WellFormed("abc") {
		t.Error("WellFormed misjudges a vouch")
	}
}

// TestCanonicalRefusesAmbiguity: a field with a newline could shift the
// others; it is refused rather than signed.
func TestCanonicalRefusesAmbiguity(t *testing.T) {
	r := Record{Handle: "bob\nrole admin", Role: "member", SignPub: "U", AgeRecipient: "age1", VouchedBy: "alice"}
	if _, err := Canonical(r); err == nil {
		t.Fatal("a handle with a newline was accepted")
	}
	if _, err := Canonical(Record{Handle: "bob"}); err == nil {
		t.Fatal("a record with empty fields was accepted")
	}
	got, err := Canonical(Record{Handle: "bob", Role: "member", SignPub: "UX", AgeRecipient: "age1x", VouchedBy: "alice"})
	want := "unibus-vouch-v1\nvouched-by alice\nhandle bob\nrole member\nsign-pub UX\nage-recipient age1x\n"
	if err != nil || string(got) != want {
		t.Fatalf("Canonical = %q, %v; want %q", got, err, want)
	}
}

// BenchmarkVerify is the client's cost per record checked before sealing.
func BenchmarkVerify(b *testing.B) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	rec := Record{Handle: "bob", Role: "member", SignPub: pub, AgeRecipient: "age1abc", VouchedBy: "alice"}
	sig, _ := Sign(kp, rec)
	for b.Loop() {
		if err := Verify(pub, rec, sig); err != nil {
			b.Fatal(err)
		}
	}
}
