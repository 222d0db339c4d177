package provision

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir, "apply", 0)
	if err != nil {
		t.Fatal(err)
	}
	// A second run is refused at once, and told who holds it.
	_, err = AcquireLock(dir, "apply", 0)
	var locked *LockedError
	if !errors.As(err, &locked) || !errors.Is(err, ErrLocked) || locked.Holder.PID != os.Getpid() || locked.Holder.Operation != "apply" {
		t.Fatalf("second lock: %v", err)
	}
	// With a wait, it gets the lock once the first lets go.
	go func() { time.Sleep(300 * time.Millisecond); l.Release() }()
	l2, err := AcquireLock(dir, "down", 5*time.Second)
	if err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	l2.Release()
	if _, err := os.Stat(filepath.Join(dir, "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after release: %v", err)
	}
}

// TestLockLeftByAKilledRun: a lock whose process is gone (an apply killed
// with SIGKILL) does not block the next run.
func TestLockLeftByAKilledRun(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	info, _ := json.Marshal(LockInfo{Owner: "x@" + host, Host: host, PID: cmd.Process.Pid, Operation: "apply", Since: time.Now()})
	if err := os.WriteFile(filepath.Join(dir, "lock"), info, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(dir, "apply", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock held by a live process: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := AcquireLock(dir, "apply", 0)
	if err != nil {
		t.Fatalf("lock of a killed run: %v", err)
	}
	l.Release()
}

func TestEnsureNodeIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "unibus", NodeIdentityFile)
	tr := LocalTransport{Root: filepath.Dir(filepath.Dir(filepath.Dir(path)))}
	ctx := context.Background()
	r1, created, err := tr.EnsureAgeIdentity(ctx, "etc/unibus/"+NodeIdentityFile)
	if err != nil || !created {
		t.Fatalf("first: %v, created %v", err, created)
	}
	st, _ := os.Stat(path)
	dir, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o600 || dir.Mode().Perm() != 0o700 {
		t.Fatalf("modes: file %v, folder %v", st.Mode().Perm(), dir.Mode().Perm())
	}
	r2, created, err := tr.EnsureAgeIdentity(ctx, "etc/unibus/"+NodeIdentityFile)
	if err != nil || created || r2 != r1 {
		t.Fatalf("second: %q (first %q), created %v, %v", r2, r1, created, err)
	}
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, _, err := tr.EnsureAgeIdentity(ctx, "etc/unibus/"+NodeIdentityFile); err == nil {
		t.Fatal("a corrupt identity file was accepted")
	}
}
