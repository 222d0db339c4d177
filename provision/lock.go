package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"syscall"
	"time"
)

// Lock is held by one apply (or down) at a time over a spec's operator
// state. Its file says who holds it, so a refused second run can say whom
// it waits for.
type Lock struct {
	path string
	Info LockInfo
}

// LockInfo is the content of the lock file.
type LockInfo struct {
	Owner     string    `json:"owner"` // user@host
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Operation string    `json:"operation"` // apply, down
	Since     time.Time `json:"since"`
}

func (i LockInfo) String() string {
	return fmt.Sprintf("%s (%s, pid %d, since %s)", i.Owner, i.Operation, i.PID, i.Since.Local().Format("2006-01-02 15:04:05"))
}

// ErrLocked is returned by [AcquireLock] when another run holds the lock.
var ErrLocked = errors.New("the spec's state is locked")

// LockedError says who holds the lock.
type LockedError struct {
	Path   string
	Holder LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s: locked by %s", e.Path, e.Holder)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// AcquireLock takes the lock file in stateDir for operation, waiting up to
// wait for a holder to let go (0: do not wait). A lock left by a process of
// this host that no longer runs (a killed apply) is taken over: the run it
// protected is over, and the next apply converges from wherever it stopped.
func AcquireLock(stateDir, operation string, wait time.Duration) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	owner := host
	if u, err := user.Current(); err == nil {
		owner = u.Username + "@" + host
	}
	l := &Lock{path: filepath.Join(stateDir, "lock"), Info: LockInfo{Owner: owner, Host: host, PID: os.Getpid(), Operation: operation, Since: time.Now().UTC().Truncate(time.Second)}}
	data, _ := json.Marshal(l.Info)
	deadline := time.Now().Add(wait)
	for delay := 50 * time.Millisecond; ; delay = min(delay*2, time.Second) {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.Write(append(data, '\n'))
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(l.path)
				return nil, werr
			}
			return l, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		holder, rerr := readLock(l.path)
		if rerr == nil && holder.Host == host && !processAlive(holder.PID) {
			// Stale: remove it and race for it again like anyone else.
			os.Remove(l.path)
			continue
		}
		if time.Now().After(deadline) {
			if rerr != nil {
				return nil, fmt.Errorf("%s: locked, and the lock file does not read: %w", l.path, rerr)
			}
			return nil, &LockedError{Path: l.path, Holder: holder}
		}
		time.Sleep(min(delay, time.Until(deadline)+time.Millisecond))
	}
}

// Release gives the lock up.
func (l *Lock) Release() error { return os.Remove(l.path) }

func readLock(path string) (LockInfo, error) {
	var i LockInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return i, err
	}
	return i, json.Unmarshal(data, &i)
}

// processAlive reports whether pid runs on this host (signal 0 probes it).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
