package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestSQLiteUpgradeAddsVouch: a state dir made by a membershipd from before
// vouches (schema 2) opens, keeps its members, and reads them with no
// vouch; new members keep theirs.
func TestSQLiteUpgradeAddsVouch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "membershipd.db"))
	must(t, "open", err)
	for v, m := range migrations[:2] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("old migration %d: %v", v+1, err)
		}
	}
	_, err = old.Exec(`PRAGMA user_version = 2;
		INSERT INTO members (handle, role, sign_pub, age_recipient, created) VALUES ('alice', 'admin', 'UALICE', 'age1alice', 1767225600)`)
	must(t, "old data", err)
	old.Close()

	s, err := OpenSQLite(ctx, dir)
	must(t, "open the old state dir", err)
	defer s.Close()
	if v, _ := s.SchemaVersion(ctx); v != len(migrations) {
		t.Fatalf("schema version %d after open; want %d", v, len(migrations))
	}
	alice, err := s.Member(ctx, "alice")
	must(t, "old member", err)
	if alice.SignPub != "UALICE" || alice.VouchedBy != "" || alice.VouchSig != "" {
		t.Fatalf("old member after the upgrade: %+v; want it kept, with no vouch", alice)
	}
	bob := member("bob", RoleMember)
	must(t, "new member", s.CreateMember(ctx, bob))
	all, err := s.AllMembers(ctx)
	must(t, "AllMembers", err)
	if len(all) != 2 || all[1] != bob {
		t.Fatalf("members after the upgrade: %+v", all)
	}
}

// TestMigrateComparesVouch: a member KV already has with another vouch is
// a conflict, not silently taken as present.
func TestMigrateComparesVouch(t *testing.T) {
	ctx := testCtx(t)
	from := openTestSQLite(t)
	must(t, "alice", from.CreateMember(ctx, member("alice", RoleAdmin)))
	js := testConnect(t, testJetStream(t))
	to := openTestKV(t, js, KVOptions{})
	other := member("alice", RoleAdmin)
	other.VouchSig = "another-vouch"
	must(t, "KV's alice", to.CreateMember(ctx, other))
	toBlobs, err := NewObjectBlobs(ctx, js, 1)
	must(t, "object store", err)
	sum, err := Migrate(ctx, from, to, toBlobs)
	must(t, "Migrate", err)
	if sum.Members.Conflicting != 1 || len(sum.Conflicts) != 1 || !strings.Contains(sum.Conflicts[0], "KV has a different vouch") {
		t.Fatalf("migrate over another vouch: %v %q", sum, sum.Conflicts)
	}
}
