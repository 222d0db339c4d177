package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/sshdtest"
)

// persistEnv turns UNIBUS_SSH_PERSIST on for the test's runs, with a
// socket folder of the test's own; the muxes left in it are killed when
// the test ends.
func persistEnv(t testing.TB) []string {
	t.Helper()
	// Short: a socket's path must fit in 107 bytes.
	runtime, err := os.MkdirTemp("", "mux")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killMuxes(t, runtime)
		os.RemoveAll(runtime)
	})
	return []string{"XDG_RUNTIME_DIR=" + runtime, "UNIBUS_SSH_PERSIST=60s"}
}

func runtimeOf(env []string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "XDG_RUNTIME_DIR="); ok {
			return v
		}
	}
	return ""
}

// muxPIDs are the muxes serving from env's runtime folder, once n serve
// (each has written its pid into its lock and answers on its socket).
func waitMuxes(t testing.TB, env []string, n int) []int {
	t.Helper()
	dir := filepath.Join(runtimeOf(env), "unibus", "ssh")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pids []int
		locks, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
		for _, l := range locks {
			b, _ := os.ReadFile(l)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			c, err := net.Dial("unix", strings.TrimSuffix(l, ".lock")+".sock")
			if pid > 0 && err == nil {
				c.Close()
				pids = append(pids, pid)
			}
		}
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d muxes serve from %s after 60s, want %d", len(pids), dir, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killMuxes ends the muxes of runtime: each holds its lock while it lives.
func killMuxes(t testing.TB, runtime string) {
	locks, _ := filepath.Glob(filepath.Join(runtime, "unibus", "ssh", "*.lock"))
	for _, l := range locks {
		deadline := time.Now().Add(60 * time.Second)
		for {
			f, err := os.OpenFile(l, os.O_RDWR, 0)
			if err != nil {
				break
			}
			free := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
			b, _ := os.ReadFile(l)
			f.Close()
			if free {
				break
			}
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if time.Now().After(deadline) {
				t.Errorf("a mux still holds %s after 60s", l)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// inOrder is a plan's output with its warnings sorted: nodes are
// observed concurrently, so their warnings come in any order.
func inOrder(out string) string {
	lines := strings.Split(out, "\n")
	var warn, rest []string
	for _, l := range lines {
		if strings.HasPrefix(l, "unibus: warning: ") {
			warn = append(warn, l)
		} else {
			rest = append(rest, l)
		}
	}
	slices.Sort(warn)
	return strings.Join(append(warn, rest...), "\n")
}

func logins(s *sshdtest.Server) int { return strings.Count(s.Log(), "Accepted publickey") }

// With UNIBUS_SSH_PERSIST, the first plan logs in (and its mux does,
// once); the next plans log in no more, and say exactly what a plan
// without it says. A SIGKILLed mux costs the next run a dial, nothing
// else.
func TestPlanOverSSHPersist(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	r := newPlanRun(t)
	roots := filepath.Join(r.dir, "roots")
	sshEnv := []string{"UNIBUS_SSH_KEY=" + s.UserKey, "UNIBUS_SSH_KNOWN_HOSTS=" + s.KnownHosts}
	persist := append(persistEnv(t), sshEnv...)
	spec := sshSpec(3, roots, "root@"+s.Addr)

	want, code, _ := r.plan(t, "ssh", spec, sshEnv...)
	if code != 2 {
		t.Fatalf("plan over ssh exit %d:\n%s", code, want)
	}
	n0 := logins(s)
	plan := func(what string) {
		t.Helper()
		out, code, _ := r.plan(t, "ssh", spec, persist...)
		if code != 2 || inOrder(out) != inOrder(want) {
			t.Fatalf("%s with UNIBUS_SSH_PERSIST: exit %d:\n%s\nwithout:\n%s", what, code, out, want)
		}
	}
	plan("the first plan")
	pid := waitMuxes(t, persist, 1)[0]
	if n := logins(s) - n0; n != 2 {
		t.Fatalf("the first plan with persist: %d logins, want 2 (the run, its mux):\n%s", n, s.Log())
	}
	n1 := logins(s)
	plan("the second plan")
	plan("the third plan")
	if n := logins(s) - n1; n != 0 {
		t.Fatalf("the plans after the first logged in %d times, want none:\n%s", n, s.Log())
	}

	// sudo = true: the same mux serves it, with sudo -n before every
	// command as over a direct connection.
	withSudo := strings.ReplaceAll(spec, `    scope   = "user"`, "    sudo    = true\n    scope   = \"user\"")
	sudoWant, sudoCode, _ := r.plan(t, "sudo", withSudo, sshEnv...)
	n1 = logins(s)
	out, code, _ := r.plan(t, "sudo", withSudo, persist...)
	if code != sudoCode || inOrder(out) != inOrder(sudoWant) {
		t.Fatalf("plan with sudo = true through the mux: exit %d:\n%s\nwithout persist: exit %d:\n%s", code, out, sudoCode, sudoWant)
	}
	if n := logins(s) - n1; n != 0 {
		t.Fatalf("plan with sudo through the mux logged in %d times", n)
	}

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		// The mux is this test's grandchild, reaped by init.
		time.Sleep(10 * time.Millisecond)
	}
	n1 = logins(s)
	plan("the plan after the mux was killed")
	if logins(s) == n1 {
		t.Fatal("the plan after the mux was killed did not dial")
	}
	if pid2 := waitMuxes(t, persist, 1)[0]; pid2 == pid {
		t.Fatal("no new mux after the kill")
	}
}
