package sshnode

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// muxFiles are the files of one target's mux, in a folder only the user
// can enter: the socket it serves, the public half of its host key (the
// pin: a client talks SSH only to the process holding the private half),
// and the lock its mux holds for as long as it lives (with its pid in it),
// so that one mux serves a target and a dead one's files are told apart
// from a live one's.
type muxFiles struct {
	dir, sock, pin, lock string
}

// muxVersion is in every socket's name: a unibus speaking another
// protocol to its mux would use other sockets.
const muxVersion = "unibus-ssh-mux-1"

// maxSocketPath is what fits in sockaddr_un's sun_path (108 bytes, with
// the NUL).
const maxSocketPath = 107

// muxFilesFor names target's mux files. The name is a hash of everything
// that makes the connection what it is (who logs in where, with which key
// or agent, checked against which known_hosts), so a run never borrows a
// connection made with other settings. o has its defaults.
func muxFilesFor(target string, o Options) (muxFiles, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return muxFiles{}, err
	}
	dir, err := muxDir()
	if err != nil {
		return muxFiles{}, err
	}
	h := sha256.New()
	for _, part := range []string{muxVersion, t.User, t.HostPort, absPath(o.KeyFile), absPath(o.KnownHosts), os.Getenv("SSH_AUTH_SOCK")} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	base := filepath.Join(dir, hex.EncodeToString(h.Sum(nil)[:16]))
	m := muxFiles{dir: dir, sock: base + ".sock", pin: base + ".pub", lock: base + ".lock"}
	if len(m.sock) > maxSocketPath {
		return muxFiles{}, fmt.Errorf("the socket path %s is longer than a unix socket allows (%d bytes): set XDG_RUNTIME_DIR to a shorter folder", m.sock, maxSocketPath)
	}
	return m, nil
}

func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// muxDir is the folder of the mux sockets, $XDG_RUNTIME_DIR/unibus/ssh
// (a per-user folder that the system empties at logout) or else
// $TMPDIR/unibus-<uid>/ssh, made private when missing. A folder that is
// there already must be the user's own with mode 0700, each level of it:
// anyone else who can write there could put a socket of theirs in front
// of the user's runs.
func muxDir() (string, error) {
	uid := os.Getuid()
	top := filepath.Join(os.TempDir(), "unibus-"+strconv.Itoa(uid))
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		top = filepath.Join(x, "unibus")
	}
	dir := filepath.Join(top, "ssh")
	for _, d := range []string{top, dir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("cannot make the socket folder: %w", err)
		}
		if err := checkPrivateDir(d, uid); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func checkPrivateDir(d string, uid int) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("socket folder: %w", err)
	}
	owner := fileOwner(fi)
	if !fi.IsDir() || owner != uid || fi.Mode().Perm() != 0o700 {
		return fmt.Errorf("the socket folder %s is not a private folder of yours (%s, owner uid %d, want a folder of uid %d with mode 0700): remove it, unibus makes it again", d, fi.Mode(), owner, uid)
	}
	return nil
}

// fileOwner is the uid owning fi, -1 when the system does not say.
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// readPin reads the host key the mux pinned, from a file of the user's.
func (m muxFiles) readPin() (ssh.PublicKey, error) {
	fi, err := os.Lstat(m.pin)
	if err != nil {
		return nil, fmt.Errorf("the mux at %s has no host key file: %w", m.sock, err)
	}
	if !fi.Mode().IsRegular() || fileOwner(fi) != os.Getuid() {
		return nil, fmt.Errorf("the host key file %s of the mux is not a file of yours (%s, owner uid %d): remove it", m.pin, fi.Mode(), fileOwner(fi))
	}
	b, err := os.ReadFile(m.pin)
	if err != nil {
		return nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("the host key file %s of the mux: %w: remove it", m.pin, err)
	}
	return k, nil
}

// tryLock takes the lock if no mux holds it; the lock lasts as long as
// the returned file stays open, and ends with the process, however it ends.
func (m muxFiles) tryLock() (*os.File, bool, error) {
	f, err := os.OpenFile(m.lock, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// removeStale removes the socket and pin of a mux that is gone (its socket
// refuses connections), unless a mux holds the lock: one that is starting
// would lose the socket it is about to serve.
func (m muxFiles) removeStale() {
	f, ok, err := m.tryLock()
	if err != nil || !ok {
		return
	}
	defer f.Close()
	m.removeServed()
}

// removeServed removes what a mux serves; its caller holds the lock.
func (m muxFiles) removeServed() {
	os.Remove(m.sock)
	os.Remove(m.pin)
}
