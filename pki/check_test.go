package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Check reports each kind of problem once, on the right file, and nothing
// on a healthy folder.
func TestCheck(t *testing.T) {
	c := newCluster(t, P256)
	if r := c.dir.Check(CheckOptions{}); len(r.Problems) != 0 || r.CAs != 2 || r.Leaves != 3 {
		t.Fatalf("healthy folder: %+v", r)
	}
	now := time.Now()
	c.node(t, "old", IssueOptions{Now: now.Add(-400 * Day)}, []string{"old.test"})
	c.node(t, "soon", IssueOptions{Now: now.Add(-350 * Day)}, []string{"soon.test"})
	c.node(t, "n2", IssueOptions{}, []string{"n2.test"})
	n1Route, n1Key := c.files(KindRoute, "n1")
	n2Route, n2Key := c.files(KindRoute, "n2")
	srvCrt, _ := c.files(KindServer, "n2")
	aliceCrt, aliceKey := c.files(KindClient, "alice")
	copyFile(t, n2Key, n1Key)    // key/cert mismatch
	copyFile(t, srvCrt, n2Route) // signed by the client CA
	os.Chmod(aliceKey, 0o644)    // world-readable
	os.Remove(filepath.Join(filepath.Dir(aliceCrt), "alice.key"))
	copyFile(t, aliceCrt, filepath.Join(filepath.Dir(aliceCrt), "bob.crt")) // cert without key
	os.WriteFile(filepath.Join(filepath.Dir(aliceCrt), "carol.crt"), []byte("garbage"), 0o644)

	got := map[string]string{}
	for _, p := range c.dir.Check(CheckOptions{}).Problems {
		got[p.File] += p.Problem + "|"
	}
	oldCrt, _ := c.files(KindRoute, "old")
	soonCrt, _ := c.files(KindRoute, "soon")
	dir := filepath.Dir(aliceCrt)
	for file, want := range map[string]string{
		oldCrt:                          "expired 35 d ago",
		soonCrt:                         "expiring: expires in 14 d",
		n1Key:                           "key does not match certificate " + n1Route,
		n2Route:                         "wrong chain: signed by the client CA",
		filepath.Join(dir, "alice.crt"): "certificate without its key",
		filepath.Join(dir, "bob.crt"):   "certificate without its key",
		filepath.Join(dir, "carol.crt"): "no PEM CERTIFICATE block",
	} {
		if !strings.Contains(got[file], want) {
			t.Errorf("%s: problems %q, want %q", file, got[file], want)
		}
	}
	if !strings.Contains(got[n2Route], "usage is serverAuth, a route certificate needs serverAuth+clientAuth") {
		t.Errorf("usage of a server cert in route.crt not reported: %q", got[n2Route])
	}

	c2 := newCluster(t, P256)
	_, key := c2.files(KindClient, "alice")
	os.Chmod(key, 0o644)
	if p := c2.dir.Check(CheckOptions{}).Problems; len(p) != 1 || p[0].File != key || !strings.Contains(p[0].Problem, "readable by group or others") {
		t.Errorf("world-readable key: %v", p)
	}
}
