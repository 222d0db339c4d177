package units

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The test binary doubles as the programs the exec manager runs, so the
// supervisor under test is the real code in a real detached process:
//
//	exec-supervise --dir DIR        the supervisor (as "unibus exec-supervise")
//	exec-start ROOT UNIT            a starter that starts a unit and exits
//	notify-helper                   a Type=notify service: READY=1, later STATUS=
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "exec-supervise":
			if err := SuperviseMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "exec-supervise:", err)
				os.Exit(1)
			}
			os.Exit(0)
		case "exec-start":
			m := testManager(os.Args[2])
			if err := m.Start(context.Background(), os.Args[3]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "notify-helper":
			daemon.SdNotify(false, "READY=1\nSTATUS=ready")
			time.Sleep(300 * time.Millisecond)
			daemon.SdNotify(false, "STATUS=still talking after READY")
			time.Sleep(time.Hour)
			os.Exit(0)
		}
	}
	code := m.Run()
	if membershipdDir != "" {
		os.RemoveAll(membershipdDir)
	}
	os.Exit(code)
}

func testManager(root string) *ExecManager {
	m := NewExecManager(root, User)
	m.Supervisor = []string{os.Args[0], "exec-supervise"}
	return m
}

// node is a fresh node root with an exec manager; every unit it started
// is stopped at the end of the test.
func node(t *testing.T) (string, *ExecManager) {
	t.Helper()
	root := t.TempDir()
	m := testManager(root)
	t.Cleanup(func() {
		ents, _ := os.ReadDir(ManagerDir(root, User))
		for _, e := range ents {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := m.Stop(ctx, e.Name()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			cancel()
		}
	})
	return root, m
}

// service writes a user unit and its drop-ins (name -> body) under root.
func service(t testing.TB, root, name, body string, dropIns map[string]string) {
	t.Helper()
	dir := filepath.Join(root, ".config", "systemd", "user")
	if err := os.MkdirAll(filepath.Join(dir, name+".d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, b := range dropIns {
		p := filepath.Join(dir, n)
		if !strings.Contains(n, "/") {
			p = filepath.Join(dir, name+".d", n)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	membershipdOnce sync.Once
	membershipdDir  string
	membershipdErr  error
)

// membershipd builds the real daemon once per test process.
func membershipd(t testing.TB) string {
	t.Helper()
	membershipdOnce.Do(func() {
		membershipdDir, membershipdErr = os.MkdirTemp("", "unibus-exec-bin-")
		if membershipdErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", membershipdDir, "github.com/unibus/unibus/cmd/membershipd")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			membershipdErr = fmt.Errorf("go build membershipd: %v\n%s", err, out)
		}
	})
	if membershipdErr != nil {
		t.Fatal(membershipdErr)
	}
	return filepath.Join(membershipdDir, "membershipd")
}

// waitStatus polls until ok(status) or fails the test after d.
func waitStatus(t *testing.T, m *ExecManager, unit string, d time.Duration, ok func(UnitStatus) bool) UnitStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := m.Status(context.Background(), unit)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status still %+v after %s", unit, st, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func removeAndLink(p string) error {
	if err := os.Remove(p); err != nil {
		return err
	}
	return os.Symlink(os.DevNull, p)
}
