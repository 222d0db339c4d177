package sshnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/unibus/unibus/internal/sshdtest"
)

// TestMain lets the test binary be the mux a Pool starts (as unibus
// ssh-mux is in production) and the probe that connects to a mux as
// another user.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("SSHNODE_TEST_MUX") == "1":
		if err := MuxMain(os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case os.Getenv("SSHNODE_TEST_PROBE") != "":
		os.Exit(probe(os.Getenv("SSHNODE_TEST_PROBE")))
	}
	os.Exit(m.Run())
}

// probe speaks SSH to the socket at sock, trusting whatever answers, and
// runs id -u there: what an intruder would do with another user's mux.
func probe(sock string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Println("dial:", err)
		return 3
	}
	cc, chans, reqs, err := ssh.NewClientConn(c, "mux", &ssh.ClientConfig{User: "root", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		fmt.Println("handshake:", err)
		return 3
	}
	s, err := ssh.NewClient(cc, chans, reqs).NewSession()
	if err != nil {
		fmt.Println("session:", err)
		return 3
	}
	out, err := s.Output("id -u")
	fmt.Printf("id -u: %q %v\n", out, err)
	return 0
}

// muxRun is one "run" of unibus with persist on: a pool of its own,
// closed at the run's end.
type muxRun struct {
	s    *sshdtest.Server
	o    Options
	warn []string
	mu   sync.Mutex
}

// newMuxTest gives the test its own socket folder (XDG_RUNTIME_DIR) and
// kills the muxes left in it when it ends.
func newMuxTest(t *testing.T, s *sshdtest.Server) (*muxRun, string) {
	t.Helper()
	// Short: a socket's path must fit in 107 bytes, and t.TempDir's
	// names the test.
	runtime, err := os.MkdirTemp("", "mux")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	t.Cleanup(func() {
		killMuxes(t, runtime)
		os.RemoveAll(runtime)
	})
	return &muxRun{s: s, o: Options{KeyFile: s.UserKey, KnownHosts: s.KnownHosts}}, runtime
}

func muxCommand(t testing.TB) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"/usr/bin/env", "SSHNODE_TEST_MUX=1", exe}
}

// client is what one run's Pool gives for target, with persist on.
func (r *muxRun) client(t *testing.T, target string, o Options) *Client {
	t.Helper()
	p := r.pool(t, o)
	c, err := p.Client(context.Background(), "node1", target)
	if err != nil {
		t.Fatalf("pool client: %v\nsshd log:\n%s", err, r.s.Log())
	}
	return c
}

func (r *muxRun) pool(t *testing.T, o Options) *Pool {
	t.Helper()
	if o.KeyFile == "" {
		o.KeyFile = r.s.UserKey
	}
	if o.KnownHosts == "" {
		o.KnownHosts = r.s.KnownHosts
	}
	p := &Pool{Options: o, Persist: time.Minute, MuxCommand: muxCommand(t), Warn: func(msg string) {
		r.mu.Lock()
		r.warn = append(r.warn, msg)
		r.mu.Unlock()
	}}
	t.Cleanup(func() { p.Close() })
	return p
}

func (r *muxRun) warnings() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.warn, "\n")
}

// files are the mux files for target with the run's options.
func (r *muxRun) files(t testing.TB, target string) muxFiles {
	t.Helper()
	o, err := r.o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	m, err := muxFilesFor(target, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// viaMux says whether c went through a mux's socket, not TCP.
func viaMux(c *Client) bool { return c.conn.RemoteAddr().Network() == "unix" }

func logins(s *sshdtest.Server) int { return strings.Count(s.Log(), "Accepted publickey") }

// waitMux waits for the mux of m to serve, and returns its pid.
func waitMux(t testing.TB, m muxFiles) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if pid := lockPID(m.lock); pid > 0 {
			if c, err := net.Dial("unix", m.sock); err == nil {
				c.Close()
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mux serves %s after 60s", m.sock)
		}
		waitBriefly()
	}
}

func lockPID(lock string) int {
	b, err := os.ReadFile(lock)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive says whether process pid is still there (the test reaps its
// muxes: Pool waits for the processes it starts).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitGone waits for process pid to end, within a generous bound.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("mux %d still runs after 60s", pid)
		}
		waitBriefly()
	}
}

// killMuxes ends every mux that serves from runtime: one holds its lock.
func killMuxes(t testing.TB, runtime string) {
	locks, _ := filepath.Glob(filepath.Join(runtime, "unibus", "ssh", "*.lock"))
	for _, l := range locks {
		m := muxFiles{lock: l}
		deadline := time.Now().Add(60 * time.Second)
		for {
			f, ok, err := m.tryLock()
			if err != nil || ok {
				if f != nil {
					f.Close()
				}
				break
			}
			if pid := lockPID(l); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if time.Now().After(deadline) {
				t.Errorf("a mux still holds %s after 60s", l)
				break
			}
			waitBriefly()
		}
	}
}
