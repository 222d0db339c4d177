// Package sshdtest runs a real OpenSSH server on loopback for tests: a
// throw-away host key, one authorized user key, logins as the user running
// the test (root, on the project's machines).
package sshdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/scripttest"
)

// SSHD is the OpenSSH server the tests run (Debian's openssh-server).
const SSHD = "/usr/sbin/sshd"

// Need skips when this machine cannot run sshd for a test: not root, or
// OpenSSH missing. Under CI=... it fails instead: a skip there would hide a
// missing install step (make deps installs openssh-server).
func Need(t testing.TB) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("sshd harness: needs root (sshd changes user for each login)")
	}
	for _, tool := range []string{SSHD, "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("sshd harness: %s not found (make deps, or apt-get install openssh-server)", tool)
		}
	}
}

// Server is one running sshd.
type Server struct {
	// Addr is host:port, on 127.0.0.1.
	Addr string
	// KnownHosts holds the server's host keys as a client that accepted
	// them has them ([host]:port lines).
	KnownHosts string
	// UserKey is the private key (OpenSSH format, no passphrase) that
	// sshd accepts; UserKey+".pub" is its public half.
	UserKey string
	// HostKeyTypes are the host key types sshd offers (ssh-keygen -t).
	HostKeyTypes []string

	dir    string
	prefix []string
	port   int
	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan error
}

// Options shape the server.
type Options struct {
	// HostKeyTypes are ssh-keygen -t types, one host key each (default
	// ed25519).
	HostKeyTypes []string
	// KnownTypes are the host key types written to KnownHosts (default
	// all of HostKeyTypes).
	KnownTypes []string
	// Prefix runs sshd under a command, such as nsenter into a mount
	// namespace where the "node" lives.
	Prefix []string
}

// Start runs sshd for the test; it stops with the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Need(t)
	if len(o.HostKeyTypes) == 0 {
		o.HostKeyTypes = []string{"ed25519"}
	}
	if o.KnownTypes == nil {
		o.KnownTypes = o.HostKeyTypes
	}
	// sshd refuses to start without its privilege separation folder,
	// which the package's service would have made.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: t.TempDir(), HostKeyTypes: o.HostKeyTypes, prefix: o.Prefix}
	s.UserKey = filepath.Join(s.dir, "user_key")
	keygen(t, "ed25519", s.UserKey)
	pub, err := os.ReadFile(s.UserKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	s.RegenerateHostKeys(t)
	// Below the ephemeral range: RegenerateHostKeys restarts sshd on the
	// same port later, which an outgoing connection could have taken.
	s.port = scripttest.Port(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.KnownHosts = filepath.Join(s.dir, "known_hosts")
	s.writeKnownHosts(t, o.KnownTypes)
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

// PlainUser is a system account whose login shell is /bin/sh and that
// has no home, made once on this machine: a session of it starts no
// interactive shell setup, so what a test times is the session itself,
// not the login user's ~/.bashrc (root's costs about 100 ms here).
const PlainUser = "unibus-sshtest"

// EnsurePlainUser makes PlainUser if it does not exist and lets it read
// the server's authorized keys (sshd reads them as the user logging in).
func (s *Server) EnsurePlainUser(t testing.TB) {
	t.Helper()
	for _, p := range []string{filepath.Dir(s.dir), s.dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(s.dir, "authorized_keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	EnsurePlainAccount(t)
}

// EnsurePlainAccount makes the PlainUser account if this machine lacks
// it. A test that mounts an overlay over /etc makes it first: the overlay
// would not see /etc/passwd change under it.
func EnsurePlainAccount(t testing.TB) {
	t.Helper()
	if exec.Command("id", "-u", PlainUser).Run() == nil {
		return
	}
	// Password "*": no password, but not locked ("!"), which sshd refuses
	// without PAM.
	if out, err := exec.Command("useradd", "--system", "--shell", "/bin/sh", "--home-dir", "/nonexistent", "--no-create-home", "--password", "*", PlainUser).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", PlainUser, err, out)
	}
}

// Authorize lets the key whose public half is in pubFile log in too.
func (s *Server) Authorize(t testing.TB, pubFile string) {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pub); err != nil {
		t.Fatal(err)
	}
}

// RegenerateHostKeys gives the server new host keys (as a reinstalled
// host has); a running server is restarted on the same port to serve
// them. KnownHosts keeps the old ones.
func (s *Server) RegenerateHostKeys(t testing.TB) {
	t.Helper()
	for _, typ := range s.HostKeyTypes {
		f := s.hostKey(typ)
		os.Remove(f)
		os.Remove(f + ".pub")
		keygen(t, typ, f)
	}
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.stop()
		s.start(t)
	}
}

func (s *Server) hostKey(typ string) string { return filepath.Join(s.dir, "host_"+typ) }

// Log is what sshd logged so far (-e: to stderr).
func (s *Server) Log() string { return s.log.String() }

// PID is the listening sshd's process id; each connection is served by
// a child of it.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// WaitIdle waits until no command runs under sshd any more (no process
// below it but sshd's own), so that what a cut session's commands did is
// done.
func (s *Server) WaitIdle(t testing.TB) {
	t.Helper()
	pid := s.PID()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmds := commandsUnder(pid)
		if len(cmds) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands still run under sshd %d after 30s: %v", pid, cmds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commandsUnder names the processes below pid that are not sshd.
func commandsUnder(pid int) []string {
	parent := map[int]int{}
	comm := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces.
		i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(stat[j+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
			comm[p] = string(stat[i+1 : j])
		}
	}
	var out []string
	for p := range parent {
		if comm[p] == "sshd" {
			continue
		}
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, fmt.Sprintf("%d %s", p, comm[p]))
				break
			}
		}
	}
	return out
}

func (s *Server) writeKnownHosts(t testing.TB, types []string) {
	t.Helper()
	var b strings.Builder
	for _, typ := range types {
		pub, err := os.ReadFile(s.hostKey(typ) + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(pub))
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s %s\n", s.port, f[0], f[1])
	}
	if err := os.WriteFile(s.KnownHosts, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Port %d\nListenAddress 127.0.0.1\n", s.port)
	for _, typ := range s.HostKeyTypes {
		fmt.Fprintf(&cfg, "HostKey %s\n", s.hostKey(typ))
	}
	fmt.Fprintf(&cfg, `PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding local
LogLevel VERBOSE
`, filepath.Join(s.dir, "authorized_keys"))
	conf := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, s.prefix...), SSHD, "-D", "-e", "-f", conf)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s.log = &lockedBuffer{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Server listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("sshd exited before listening: %v\n%s", err, s.log.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sshd not listening after 30s:\n%s", s.log.String())
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	s.exited = exited
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-s.exited
}

func keygen(t testing.TB, typ, file string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "sshdtest", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -t %s: %v: %s", typ, err, out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
