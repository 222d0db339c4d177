package sshnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
)

// A port on the node's loopback is reached through the connection, as the
// rollout gate and status read /healthz; other addresses are refused.
func TestDialLoopbackThroughSSH(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c := dial(t, s, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok from %s", r.URL.Path)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok from /healthz" {
		t.Fatalf("through ssh: %q", body)
	}
	for _, addr := range []string{"192.0.2.1:80", "example.com:80"} {
		if _, err := c.DialContext(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "only the node's loopback") {
			t.Fatalf("dial %s: %v", addr, err)
		}
	}
	_, err = c.DialContext(context.Background(), "tcp", "127.0.0.1:1")
	wantErr(t, err, "node node1: ", "127.0.0.1:1", "listening")
}

// One connection serves many callers at once, more than sshd's
// MaxSessions (10): files written, read, listed and ports dialled in
// parallel all succeed.
func TestConcurrentUse(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c := dial(t, s, Options{})
	tr, _ := nodeRoot(t, c)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: c.DialContext}}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("etc/unibus/f%d", i)
			want := fmt.Sprintf("content %d", i)
			if err := tr.WriteFile(ctx, p, []byte(want), 0o644); err != nil {
				errs <- err
				return
			}
			got, ok, err := tr.ReadPublic(ctx, p)
			if err != nil || !ok || string(got) != want {
				errs <- fmt.Errorf("read %s: %q %v %v", p, got, ok, err)
			}
			if _, err := tr.Files(ctx, []string{"etc"}); err != nil {
				errs <- err
			}
			resp, err := hc.Get(srv.URL)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	files, err := tr.Files(ctx, []string{"etc"})
	if err != nil || len(files) != 24 {
		t.Fatalf("%d files, %v; want 24", len(files), err)
	}
}

// Commands run with their arguments as words, never read by the shell,
// and stdin fed; a failure names the node, the command and its message.
func TestRun(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c := dial(t, s, Options{})
	out, err := c.Run(context.Background(), []string{"sh", "-c", `printf '%s|' "$1"; cat`, "sh", "a'b $(echo no) `echo no`"}, strings.NewReader("from stdin"))
	if err != nil || string(out) != "a'b $(echo no) `echo no`|from stdin" {
		t.Fatalf("Run: %q %v", out, err)
	}
	_, err = c.Run(context.Background(), []string{"sh", "-c", "echo it broke >&2; exit 7"}, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 7 {
		t.Fatalf("failed command: %v", err)
	}
	wantErr(t, err, "node node1: sh: exit status 7: it broke")
}

// With sudo, a node that cannot give it says what to do; root with sudo
// installed just works. (A login with a sudo rule is in
// TestApplySystemScopeOverSSH: the rule lives only in its namespaces.)
func TestSudo(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c := dial(t, s, Options{Sudo: true})
	tr, root := nodeRoot(t, c)
	err := tr.WriteFile(context.Background(), "etc/x", []byte("x"), 0o644)
	if _, lerr := exec.LookPath("sudo"); lerr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sudo is not installed (make deps installs it)")
		}
		wantErr(t, err, "node node1: ", "sudo is not installed", "log in as root")
		return
	}
	if err != nil {
		t.Fatalf("root with sudo: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/x")); err != nil {
		t.Fatal(err)
	}

	// A login sudo asks a password of: refused at once (-n), with the fix.
	s.EnsurePlainUser(t)
	pc, err := Dial(context.Background(), "node1", sshdtest.PlainUser+"@"+s.Addr, Options{KeyFile: s.UserKey, KnownHosts: s.KnownHosts, Sudo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = pc.Run(context.Background(), []string{"id", "-u"}, nil)
	wantErr(t, err, "node node1: sudo -n refused "+sshdtest.PlainUser+" (sudo: a password is required)", "allow "+sshdtest.PlainUser+" passwordless sudo")
}

// A node without sudo, as its login shell reports it (recorded from
// dash and bash): said so, with the fix.
func TestSudoNotInstalled(t *testing.T) {
	c := &Client{name: "n1", target: Target{User: "ops"}, o: Options{Sudo: true}}
	for _, stderr := range []string{"sh: 1: exec: sudo: not found\n", "bash: line 1: exec: sudo: not found\n"} {
		wantErr(t, c.sudoErr(127, stderr), "node n1: sudo is not installed there", "allow ops passwordless sudo, or log in as root")
	}
	for status, stderr := range map[int]string{
		127: "sh: 1: exec: age-keygen: not found\n",
		2:   "sudo: unable to resolve host magnus: Name or service not known\nmembershipd: bad flag\n",
	} {
		if err := c.sudoErr(status, stderr); err != nil {
			t.Fatalf("a command that failed on its own (%d, %q) taken for sudo's refusal: %v", status, stderr, err)
		}
	}
	wantErr(t, c.sudoErr(1, "sudo: unable to resolve host magnus\nSorry, user ops is not allowed to execute '/bin/sh' as root on magnus.\n"),
		"node n1: sudo -n refused ops (Sorry, user ops is not allowed to execute")
}

// A pool dials each target once, however many callers ask at once.
func TestPoolDialsOnce(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	p := &Pool{Options: Options{KnownHosts: s.KnownHosts, KeyFile: s.UserKey}}
	defer p.Close()
	clients := make([]*Client, 8)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Client(context.Background(), "node1", s.Addr)
			if err != nil {
				t.Error(err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != clients[0] || c == nil {
			t.Fatalf("pool gave different connections: %p %p", c, clients[0])
		}
	}
	if n := strings.Count(s.Log(), "Accepted publickey"); n != 1 {
		t.Fatalf("%d logins for one target, want 1:\n%s", n, s.Log())
	}
}

// Nodes sharing a host share its connection, and each error names the
// node it is about: a dial that failed for n1 reads "node n2" for n2,
// and a command run for n2 fails as n2's.
func TestPoolNamesEachNode(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	p := &Pool{Options: Options{KnownHosts: s.KnownHosts, KeyFile: s.UserKey}}
	defer p.Close()
	ctx := context.Background()
	c1, err := p.Client(ctx, "n1", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := p.Client(ctx, "n2", s.Addr)
	_, err = c2.For("n2").Run(ctx, []string{"sh", "-c", "exit 5"}, nil)
	wantErr(t, err, "node n2: sh: exit status 5")
	if c1.For("n2").Name() != "n2" || c1.Name() != "n1" {
		t.Fatalf("For renamed the shared client: %s, %s", c1.For("n2").Name(), c1.Name())
	}

	bad := &Pool{Options: Options{KnownHosts: s.KnownHosts, KeyFile: s.UserKey}}
	addr := "127.0.0.1:1"
	_, err1 := bad.Client(ctx, "n1", addr)
	_, err2 := bad.Client(ctx, "n2", addr)
	wantErr(t, err1, "node n1: cannot reach "+addr)
	wantErr(t, err2, "node n2: cannot reach "+addr)
}
