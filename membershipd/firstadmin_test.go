package membershipd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unibus/unibus/client"
)

func writeFirstAdmin(t testing.TB, id *client.Identity) string {
	t.Helper()
	rec, err := id.FirstAdminRecord()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "first-admin.json")
	if err := os.WriteFile(p, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFirstAdmin: --first-admin makes its record the admin of a control
// plane that has none, and is ignored once one exists (a second record,
// or a restart with another file, never adds an admin). A record without
// the admin's own vouch is refused before anything serves.
func TestFirstAdmin(t *testing.T) {
	ctx := context.Background()
	alice, bob := mustIdentity(t, "alice"), mustIdentity(t, "bob")
	cfg := testConfig(t)
	cfg.BusAuth = BusAuthEnforce
	cfg.FirstAdminFile = writeFirstAdmin(t, alice)
	d := startDaemon(t, cfg)
	c := client.New("http://"+d.HTTPAddr(), alice)
	carol := mustIdentity(t, "carol")
	if _, err := c.CreateMember(ctx, client.Member{Handle: "carol", Role: "member", SignPub: carol.SignPub(), AgeRecipient: carol.Recipient()}); err != nil {
		t.Fatalf("alice, the first admin, adds a member: %v", err)
	}
	d.Shutdown()

	cfg.FirstAdminFile = writeFirstAdmin(t, bob)
	d = startDaemon(t, cfg)
	if _, err := client.New("http://"+d.HTTPAddr(), bob).Rooms(ctx); err == nil {
		t.Fatal("a second --first-admin record became a member of a control plane that has an admin")
	}
	d.Shutdown()

	rec, _ := alice.FirstAdminRecord()
	forged := strings.Replace(string(rec), alice.Recipient(), mustIdentity(t, "x").Recipient(), 1)
	bad := filepath.Join(t.TempDir(), "forged.json")
	os.WriteFile(bad, []byte(forged), 0o644)
	cfg.FirstAdminFile = bad
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "--first-admin") {
		t.Fatalf("a record whose vouch does not cover its recipient: %v", err)
	}
}
