package sshnode

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/unibus/unibus/internal/sshdtest"
)

// dial connects to s as the test's user with s's key and known_hosts.
func dial(t testing.TB, s *sshdtest.Server, o Options) *Client {
	t.Helper()
	if o.KeyFile == "" {
		o.KeyFile = s.UserKey
	}
	if o.KnownHosts == "" {
		o.KnownHosts = s.KnownHosts
	}
	c, err := Dial(context.Background(), "node1", s.Addr, o)
	if err != nil {
		t.Fatalf("dial: %v\nsshd log:\n%s", err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nodeRoot is a fresh root "on the node" (this machine, as sshd sees it).
func nodeRoot(t testing.TB, c *Client) (*Transport, string) {
	t.Helper()
	root := t.TempDir()
	tr, err := c.Transport(root)
	if err != nil {
		t.Fatal(err)
	}
	return tr, root
}

// fingerprint is the SHA256:... fingerprint of a public key file.
func fingerprint(t testing.TB, pubFile string) string {
	t.Helper()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}

// waitBriefly yields while a process started by a test comes up.
func waitBriefly() { time.Sleep(10 * time.Millisecond) }
