package sshnode

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
)

// A host known_hosts does not know is refused with its fingerprint,
// unless accepted, which records it; a changed key is refused with both
// fingerprints, accepted or not.
func TestHostKeyRefusals(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	ctx := context.Background()
	fp := fingerprint(t, filepath.Join(filepath.Dir(s.KnownHosts), "host_ed25519.pub"))

	known := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	_, err := Dial(ctx, "node1", s.Addr, Options{KnownHosts: known, KeyFile: s.UserKey})
	wantErr(t, err, "node node1: ", "not in "+known, fp, "accept")
	if _, err := os.Stat(known); !os.IsNotExist(err) {
		t.Fatalf("a refused host was recorded: %v", err)
	}

	c, err := Dial(ctx, "node1", s.Addr, Options{KnownHosts: known, KeyFile: s.UserKey, AcceptNewHostKey: true})
	if err != nil {
		t.Fatalf("accepting a new host: %v", err)
	}
	c.Close()
	b, _ := os.ReadFile(known)
	if !strings.HasPrefix(string(b), "["+strings.Replace(s.Addr, ":", "]:", 1)+" ssh-ed25519 ") {
		t.Fatalf("known_hosts after accepting: %q", b)
	}
	c, err = Dial(ctx, "node1", s.Addr, Options{KnownHosts: known, KeyFile: s.UserKey})
	if err != nil {
		t.Fatalf("an accepted host: %v", err)
	}
	c.Close()

	s.RegenerateHostKeys(t)
	newFP := fingerprint(t, filepath.Join(filepath.Dir(s.KnownHosts), "host_ed25519.pub"))
	for _, accept := range []bool{false, true} {
		_, err = Dial(ctx, "node1", s.Addr, Options{KnownHosts: known, KeyFile: s.UserKey, AcceptNewHostKey: accept})
		wantErr(t, err, "node node1: ", "changed", fp, newFP, "ssh-keygen -R")
	}
}

// A host known by its ed25519 key that also has an ECDSA key, which
// x/crypto prefers, is reached: only the algorithms known_hosts holds for
// it are offered.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{HostKeyTypes: []string{"ecdsa", "ed25519", "rsa"}, KnownTypes: []string{"ed25519"}})
	dial(t, s, Options{})
	s2 := sshdtest.Start(t, sshdtest.Options{HostKeyTypes: []string{"ecdsa", "ed25519", "rsa"}, KnownTypes: []string{"rsa"}})
	dial(t, s2, Options{})
}

func TestAuthenticationRefused(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	_, err := Dial(context.Background(), "node1", s.Addr, Options{KnownHosts: s.KnownHosts, KeyFile: other})
	wantErr(t, err, "node node1: ", "refused authentication", other, "authorized_keys")

	// A user that is not there is refused the same way.
	_, err = Dial(context.Background(), "node1", "nosuchuser@"+s.Addr, Options{KnownHosts: s.KnownHosts, KeyFile: s.UserKey})
	wantErr(t, err, "node node1: ", "refused authentication")
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Dial(context.Background(), "node1", "root@"+addr, Options{KnownHosts: filepath.Join(t.TempDir(), "kh"), KeyFile: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "ssh key") {
		t.Fatalf("a missing key file: %v", err)
	}
	s := sshdtest.Start(t, sshdtest.Options{})
	_, err = Dial(context.Background(), "node1", "root@"+addr, Options{KnownHosts: s.KnownHosts, KeyFile: s.UserKey})
	wantErr(t, err, "node node1: ", "cannot reach "+addr, "sshd listening")
}

// Keys come from the SSH agent when no key file is given.
func TestAgentAuth(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Skip("ssh-agent not installed")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no default keys: the agent's only
	var out []byte
	var err error
	// ssh-add fails until the agent listens; it says so in its output.
	for range 200 {
		if out, err = exec.Command("ssh-add", s.UserKey).CombinedOutput(); err == nil {
			break
		}
		if _, serr := os.Stat(sock); serr == nil {
			continue
		}
		waitBriefly()
	}
	if err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	c, err := Dial(context.Background(), "node1", s.Addr, Options{KnownHosts: s.KnownHosts})
	if err != nil {
		t.Fatalf("dial with the agent's key: %v", err)
	}
	c.Close()
	// With neither agent nor keys, the error says where keys come from.
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err = Dial(context.Background(), "node1", s.Addr, Options{KnownHosts: s.KnownHosts})
	wantErr(t, err, "node node1: ", "ssh-add")
}
