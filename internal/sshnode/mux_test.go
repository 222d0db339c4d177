package sshnode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
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

// The first run dials and starts a mux; the next runs reach the node
// through it without logging in again, and everything they do there
// behaves byte for byte as over a direct connection: arguments, stdin,
// stdout and stderr (binary), exit statuses and signals, sessions beyond
// sshd's MaxSessions, the tunnel to the node's loopback.
func TestMuxSharesConnection(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r, _ := newMuxTest(t, s)

	first := r.client(t, s.Addr, Options{})
	if viaMux(first) {
		t.Fatal("the first run went through a mux that cannot be there yet")
	}
	waitMux(t, r.files(t, s.Addr))
	before := logins(s)
	if before != 2 {
		t.Fatalf("%d logins after the first run, want 2 (the run, its mux):\n%s", before, s.Log())
	}
	direct := dial(t, s, Options{})
	before++
	c := r.client(t, s.Addr, Options{})
	if !viaMux(c) {
		t.Fatalf("the second run dialled again instead of using the mux; warnings: %s", r.warnings())
	}
	c2 := r.client(t, s.Addr, Options{})
	if !viaMux(c2) {
		t.Fatal("the third run dialled again")
	}

	ctx := context.Background()
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	cmds := []struct {
		argv  []string
		stdin []byte
	}{
		{[]string{"sh", "-c", `printf '%s|' "$1"; cat`, "sh", "a'b $(echo no) `echo no`"}, []byte("from stdin")},
		{[]string{"sh", "-c", "cat; cat >&2; exit 3"}, blob},
		{[]string{"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; printf 'late on stderr' >&2"}, nil},
		{[]string{"sh", "-c", "echo it broke >&2; exit 7"}, nil},
		{[]string{"sh", "-c", "kill -TERM $$"}, nil},
		{[]string{"no-such-command-here"}, nil},
	}
	for _, cmd := range cmds {
		var in1, in2 io.Reader
		if cmd.stdin != nil {
			in1, in2 = bytes.NewReader(cmd.stdin), bytes.NewReader(cmd.stdin)
		}
		wantOut, wantErr := direct.Run(ctx, cmd.argv, in1)
		gotOut, gotErr := c.Run(ctx, cmd.argv, in2)
		if !bytes.Equal(gotOut, wantOut) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%q through the mux: %d bytes, %v; directly: %d bytes, %v", cmd.argv, len(gotOut), gotErr, len(wantOut), wantErr)
		}
		var ee, dee *ExitError
		if errors.As(gotErr, &ee) != errors.As(wantErr, &dee) || ee != nil && (ee.Status != dee.Status || ee.Stderr != dee.Stderr) {
			t.Errorf("%q: exit through the mux %+v, directly %+v", cmd.argv, ee, dee)
		}
	}
	var ee *ExitError
	out, err := c.script(ctx, `sha256sum >&2; exit 5`, bytes.NewReader(blob))
	if !errors.As(err, &ee) || ee.Status != 5 || !strings.HasPrefix(ee.Stderr, fmt.Sprintf("%x", sha256.Sum256(blob))) || len(out) != 0 {
		t.Fatalf("stdin of a script through the mux: %q %v", out, err)
	}

	// More sessions at once than sshd allows on one connection (10),
	// from two runs sharing the mux.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := []*Client{c, c2}[i%2]
			out, err := cl.Run(ctx, []string{"sh", "-c", "sleep 0.05; echo $1", "sh", strconv.Itoa(i)}, nil)
			if err != nil || string(out) != strconv.Itoa(i)+"\n" {
				errs <- fmt.Errorf("session %d: %q %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The tunnel to the node's loopback.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok from %s: %d bytes", r.URL.Path, len(body))
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(srv.URL+"/healthz", "application/octet-stream", bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("ok from /healthz: %d bytes", len(blob)); string(body) != want {
		t.Fatalf("through the mux's tunnel: %q, want %q", body, want)
	}
	_, err = c.DialContext(ctx, "tcp", "127.0.0.1:1")
	_, derr := direct.DialContext(ctx, "tcp", "127.0.0.1:1")
	if fmt.Sprint(err) != fmt.Sprint(derr) || err == nil {
		t.Fatalf("a closed port through the mux: %v; directly: %v", err, derr)
	}

	if n := logins(s); n != before {
		t.Fatalf("%d logins, want %d: the runs through the mux logged in again:\n%s", n, before, s.Log())
	}
}

// Commands that end at once, three at a time as a plan of three nodes
// runs them: sshd sends the exec's reply, the exit status and the close
// back to back, and the close must not overtake the reply (the run's exec
// got EOF). A /bin/sh login: root's ~/.bashrc here is too slow to race.
func TestMuxFastCommands(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	s.EnsurePlainUser(t)
	r, _ := newMuxTest(t, s)
	target := sshdtest.PlainUser + "@" + s.Addr
	r.client(t, target, Options{})
	waitMux(t, r.files(t, target))
	c := r.client(t, target, Options{})
	if !viaMux(c) {
		t.Fatalf("the second run dialled again; warnings: %s", r.warnings())
	}
	for i := 0; i < 300; i += 3 {
		errs := make(chan error, 3)
		for range 3 {
			go func() { _, err := c.Run(context.Background(), []string{"true"}, nil); errs <- err }()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatalf("true through the mux, round %d: %v", i/3, err)
			}
		}
	}
}

// Sudo's refusals read the same through the mux as directly: a user
// without passwordless sudo is told what to do.
func TestMuxSudoErrors(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("sudo not installed")
	}
	s := sshdtest.Start(t, sshdtest.Options{})
	s.EnsurePlainUser(t)
	r, _ := newMuxTest(t, s)
	target := sshdtest.PlainUser + "@" + s.Addr
	r.client(t, target, Options{Sudo: true})
	waitMux(t, r.files(t, target))
	c := r.client(t, target, Options{Sudo: true})
	if !viaMux(c) {
		t.Fatalf("not through the mux; warnings: %s", r.warnings())
	}
	direct, err := Dial(context.Background(), "node1", target, Options{KeyFile: s.UserKey, KnownHosts: s.KnownHosts, Sudo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	_, err = c.Run(context.Background(), []string{"true"}, nil)
	_, derr := direct.Run(context.Background(), []string{"true"}, nil)
	wantErr(t, err, "node node1: ", "sudo: a password is required")
	if err.Error() != derr.Error() {
		t.Fatalf("sudo through the mux: %v\ndirectly: %v", err, derr)
	}
}

// A mux killed while a run uses it fails that run with the message of a
// lost connection; the next run finds the socket dead, removes it, dials
// directly and starts a new mux.
func TestMuxKilled(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r, _ := newMuxTest(t, s)
	m := r.files(t, s.Addr)
	r.client(t, s.Addr, Options{})
	pid := waitMux(t, m)
	c := r.client(t, s.Addr, Options{})
	if !viaMux(c) {
		t.Fatal("not through the mux")
	}
	marker := filepath.Join(t.TempDir(), "started")
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), []string{"sh", "-c", `touch "$1"; sleep 60`, "sh", marker}, nil)
		done <- err
	}()
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		waitBriefly()
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wantErr(t, <-done, "node node1: ", "connection was lost")
	waitGone(t, pid)
	if _, err := os.Lstat(m.sock); err != nil {
		t.Fatalf("a SIGKILLed mux leaves its socket, which this test needs: %v", err)
	}

	n := logins(s)
	// A run whose mux cannot start: the dead socket must go all the same.
	p := r.pool(t, Options{})
	p.MuxCommand = []string{"/bin/false"}
	next, err := p.Client(context.Background(), "node1", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(m.sock); !os.IsNotExist(err) {
		t.Fatalf("the dead mux's socket is still there after a run: %v", err)
	}
	if viaMux(next) {
		t.Fatal("the run after the kill went through a dead mux")
	}
	if out, err := next.Run(context.Background(), []string{"echo", "ok"}, nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("the run after the kill: %q %v", out, err)
	}
	if logins(s) == n {
		t.Fatal("the run after the kill did not log in")
	}
	if w := r.warnings(); w != "" {
		t.Fatalf("a dead mux is not worth a warning: %s", w)
	}
	r.client(t, s.Addr, Options{})
	if pid2 := waitMux(t, m); pid2 == pid {
		t.Fatal("no new mux")
	}
}

// A mux no run has used for its persist duration exits, and removes its
// socket.
func TestMuxIdleExit(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r, _ := newMuxTest(t, s)
	m := r.files(t, s.Addr)
	p := r.pool(t, Options{})
	p.Persist = 500 * time.Millisecond
	if _, err := p.Client(context.Background(), "node1", s.Addr); err != nil {
		t.Fatal(err)
	}
	pid := waitMux(t, m)
	p.Close()
	waitGone(t, pid)
	if _, err := os.Lstat(m.sock); !os.IsNotExist(err) {
		t.Fatalf("the mux left its socket: %v", err)
	}
}

// Another user connecting to the mux's socket gets nothing, even when
// the folder lets them in.
func TestMuxRefusesOtherUser(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	s.EnsurePlainUser(t)
	r, runtime := newMuxTest(t, s)
	m := r.files(t, s.Addr)
	r.client(t, s.Addr, Options{})
	waitMux(t, m)
	// Opened wide: only the mux's own check stands in the way.
	for _, d := range []string{runtime, filepath.Dir(m.dir), m.dir} {
		os.Chmod(d, 0o755)
	}
	os.Chmod(m.sock, 0o777)
	// The probe is this test binary, where the other user can run it.
	bin := filepath.Join(t.TempDir(), "probe")
	os.Chmod(filepath.Dir(bin), 0o755)
	exe, _ := os.Executable()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(sshdtest.PlainUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(bin)
	cmd.Env = []string{"SSHNODE_TEST_PROBE=" + m.sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.HasPrefix(string(out), "handshake:") {
		t.Fatalf("uid %d connecting to root's mux: %v:\n%s", uid, err, out)
	}
	// The same probe as the mux's user gets in: the refusal was the uid's.
	cmd = exec.Command(bin)
	cmd.Env = []string{"SSHNODE_TEST_PROBE=" + m.sock}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"0\n"`) {
		t.Fatalf("the mux's own user: %v:\n%s", err, out)
	}
}

// A socket folder others could write to, or a socket that is not the
// user's, is refused in one line; the run dials directly and works, and
// no mux starts there.
func TestMuxRefusesUnsafeFolder(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	s.EnsurePlainUser(t)
	u, err := user.Lookup(sshdtest.PlainUser)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := strconv.Atoi(u.Uid)
	for _, tc := range []struct {
		name  string
		spoil func(dir string)
	}{
		{"mode 0755", func(dir string) { os.Chmod(dir, 0o755) }},
		{"mode 0770", func(dir string) { os.Chmod(filepath.Dir(dir), 0o770) }},
		{"another owner", func(dir string) { os.Chown(dir, other, -1) }},
		{"a symlink", func(dir string) {
			real := dir + ".real"
			os.Rename(dir, real)
			os.Symlink(real, dir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, runtime := newMuxTest(t, s)
			dir := filepath.Join(runtime, "unibus", "ssh")
			os.MkdirAll(dir, 0o700)
			tc.spoil(dir)
			c := r.client(t, s.Addr, Options{})
			if out, err := c.Run(context.Background(), []string{"echo", "ok"}, nil); err != nil || string(out) != "ok\n" {
				t.Fatalf("run beside a refused folder: %q %v", out, err)
			}
			w := r.warnings()
			if strings.Count(w, "\n") != 0 || !strings.Contains(w, "not a private folder of yours") || !strings.Contains(w, "connecting directly") {
				t.Fatalf("warning %q", w)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("files made in a refused folder: %v", ents)
			}
		})
	}
	t.Run("socket of another user", func(t *testing.T) {
		r, _ := newMuxTest(t, s)
		m := r.files(t, s.Addr)
		// Served by a process of ours with the pinned key, as a mux is:
		// only the socket's owner is wrong.
		signer := newSigner(t)
		if err := os.WriteFile(m.pin, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", m.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go fakeNode(l, signer)
		os.Chown(m.sock, other, -1)
		c := r.client(t, s.Addr, Options{})
		if out, err := c.Run(context.Background(), []string{"echo", "real"}, nil); err != nil || string(out) != "real\n" || viaMux(c) {
			t.Fatalf("went through another user's socket: %q %v", out, err)
		}
		if w := r.warnings(); !strings.Contains(w, "is not a socket of yours") {
			t.Fatalf("warning %q", w)
		}
	})
}

// A socket answered by a process that does not hold the pinned host key
// (here: this test, serving a fake node) is refused; the run dials
// directly and sees the real node.
func TestMuxRefusesFakeSocket(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r, _ := newMuxTest(t, s)
	m := r.files(t, s.Addr)
	pinned, _, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := ssh.NewPublicKey(pinned)
	if err := os.WriteFile(m.pin, ssh.MarshalAuthorizedKey(pk), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", m.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go fakeNode(l, newSigner(t))

	c := r.client(t, s.Addr, Options{})
	out, err := c.Run(context.Background(), []string{"echo", "real"}, nil)
	if err != nil || string(out) != "real\n" {
		t.Fatalf("Run beside a fake socket: %q %v", out, err)
	}
	if w := r.warnings(); !strings.Contains(w, "is not the mux that pinned its key") {
		t.Fatalf("warning %q", w)
	}
}

// fakeNode answers every command with "fake", as an impostor would.
func fakeNode(l net.Listener, signer ssh.Signer) {
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(signer)
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			_, chans, reqs, err := ssh.NewServerConn(c, cfg)
			if err != nil {
				return
			}
			go ssh.DiscardRequests(reqs)
			for nc := range chans {
				ch, creqs, err := nc.Accept()
				if err != nil {
					continue
				}
				go func() {
					for req := range creqs {
						req.Reply(true, nil)
						if req.Type == "exec" {
							io.WriteString(ch, "fake\n")
							ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
							ch.Close()
						}
					}
				}()
			}
		}()
	}
}

func newSigner(t testing.TB) ssh.Signer {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}
