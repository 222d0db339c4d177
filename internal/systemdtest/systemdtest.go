// Package systemdtest runs a real systemd user manager for tests, on
// machines where systemd is not PID 1.
package systemdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A real systemd user manager for tests, on machines where systemd is not
// PID 1. systemd --user refuses to run unless /run/systemd/system exists,
// so it runs in a private mount namespace with a tmpfs over /run.
// Each piece of the recipe answers a failure seen on a hybrid-cgroup host:
//
//   - own cgroup first: a manager that starts in the root cgroup moves every
//     process of the machine into its init.scope (in the memory, pids and
//     cpu hierarchies too);
//   - /run/systemd/inaccessible: the user manager takes the nodes it mounts
//     over hidden paths (ProtectHome=, ProtectKernelTunables=,
//     ProtectKernelLogs=) from there, which PID 1 would have made;
//     without them those units fail with 226/NAMESPACE;
//   - a tmpfs over all of /run, as on a real host (here /run is a plain
//     folder of /): systemd rebuilds /run for units that remount /proc or
//     /sys (ProtectKernelTunables=, ProtectProc=, ...) and then loses what
//     was mounted under it, the notify socket included;
//   - XDG_RUNTIME_DIR is /run/unibus-user, 0755: not under /tmp, which
//     PrivateTmp= hides, nor under /run/user, which ProtectHome=yes hides
//     (with the notify socket and the credentials in it), and open to a
//     DynamicUser= service as PID 1's /run/systemd is; the notify socket
//     is made world-writable as PID 1's is, so such a service can send
//     READY=1. With that, system-scope units (DynamicUser=, ProtectHome=yes)
//     run here as they would under PID 1, credentials included;
//   - /run/user/0 links to it, where a login (an SSH session driving
//     systemctl --user) looks for it, and /run/sshd exists for an sshd
//     run in the namespace;
//   - a journald of its own (its sockets in the private /run/systemd, its
//     files on a tmpfs /run/log), so units log as on a real host and a
//     failed start can be explained from the journal;
//   - / shared again inside the namespace (a new peer group, so nothing
//     reaches the host): LoadCredential= mounts the credentials in a child
//     namespace and moves them into place, which a private / never sees
//     (the service finds an empty $CREDENTIALS_DIRECTORY).
//
// The host reaches the manager's runtime directory as
// /proc/PID/root/run/unibus-user ([Manager.HostPath], [Manager.Env]).
//
// What this root user manager (systemd 252, hybrid cgroups) does not give a
// unit, seen by running them: MemoryMax=, TasksMax=, DevicePolicy= have no
// effect (those cgroup v1 controllers are not delegated).
type Manager struct {
	pid        int
	cmd        *exec.Cmd
	out        *bytes.Buffer
	cgroups    []string // cgroup folders the manager's tree lives in, one per hierarchy
	configHome string   // XDG_CONFIG_HOME: $XDG_CONFIG_HOME/systemd/user holds linked units
	home       string
	waitErr    error
}

// Options shape the manager.
type Options struct {
	// ConfigDirs are added to XDG_CONFIG_DIRS: the manager also loads units
	// and drop-ins from <dir>/systemd/user, as a user manager whose
	// environment.d names them does. Several unibus nodes sharing this
	// machine, each under its own root, are found this way.
	ConfigDirs []string
	// System makes the manager stand in for PID 1 too: inside its
	// namespace it loads units from /etc/systemd/system (empty at first,
	// the host's hidden), and
	// /run/systemd/private leads to it, so systemctl without --user (as
	// root, or under sudo) drives it as the system manager. /etc there is
	// an overlay of the host's, so a node with root / (its units, its
	// /etc/unibus) writes only into the test's folder.
	System bool
	// Sudoers is a sudoers rule in /etc/sudoers.d of the namespace only
	// (in the /etc overlay): a grant no process outside it sees, and that
	// a killed test cannot leave behind.
	Sudoers string
}

// runtimeDir is the manager's XDG_RUNTIME_DIR as seen inside its namespace.
const runtimeDir = "/run/unibus-user"

var managerSeq atomic.Int32

// Start starts systemd --user in its own mount namespace and
// cgroup and waits until it runs. Cleanup asks it to exit, then SIGKILLs it
// and whatever is left in its cgroups, and removes them.
func Start(t testing.TB, opts Options) *Manager {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	m := &Manager{
		out:        &bytes.Buffer{},
		configHome: filepath.Join(dir, "config"),
		home:       filepath.Join(dir, "home"),
	}
	for _, d := range []string{m.configHome, m.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inaccessible := filepath.Join(dir, "inaccessible")
	if err := makeInaccessibleNodes(inaccessible); err != nil {
		t.Fatalf("making /run/systemd/inaccessible's nodes: %v", err)
	}
	name := fmt.Sprintf("unibus-test-%d-%d", os.Getpid(), managerSeq.Add(1))
	for _, root := range cgroupRoots() {
		cg := filepath.Join(root, name)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatalf("creating the manager's cgroup: %v", err)
		}
		m.cgroups = append(m.cgroups, cg)
	}
	overlay := ""
	if opts.System || opts.Sudoers != "" {
		overlay = filepath.Join(dir, "etc")
		if err := makeEtcOverlay(overlay, opts.Sudoers); err != nil {
			m.removeCgroups(t)
			t.Fatalf("the /etc overlay: %v", err)
		}
	}
	// unshare without --fork execs: the shell, then systemd, keep its PID.
	m.cmd = exec.Command("unshare", "--mount", "--propagation", "private",
		"sh", "-euc", startScript, "sh", inaccessible, strings.Join(m.cgroups, " "), overlay, strconv.FormatBool(opts.System))
	m.cmd.Env = append(os.Environ(),
		"XDG_RUNTIME_DIR="+runtimeDir,
		"XDG_CONFIG_HOME="+m.configHome,
		"HOME="+m.home, // keeps root's own ~/.config/systemd/user out
		"XDG_CONFIG_DIRS="+strings.Join(append(slices.Clone(opts.ConfigDirs), "/etc/xdg"), ":"),
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+runtimeDir+"/bus",
		"SYSTEMD_LOG_LEVEL=info",
		"SYSTEMD_LOG_TARGET=console",
	)
	if opts.System {
		// The trailing colon keeps the user manager's own folders too.
		m.cmd.Env = append(m.cmd.Env, "SYSTEMD_UNIT_PATH=/etc/systemd/system:")
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.removeCgroups(t)
		t.Fatalf("starting systemd --user: %v", err)
	}
	m.pid = m.cmd.Process.Pid
	// exited is closed once the manager is gone; waitErr says how it ended.
	exited := make(chan struct{})
	go func() { m.waitErr = m.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { m.shutdown(t, exited) })
	m.waitRunning(t, exited)
	// PID 1's notify socket is world-writable, so a DynamicUser= service
	// can send READY=1; a user manager makes its own 0755.
	if err := os.Chmod(m.HostPath(runtimeDir+"/systemd/notify"), 0o777); err != nil {
		t.Fatalf("opening the notify socket to every user: %v", err)
	}
	return m
}

// startScript runs in the new mount namespace: $1 is the folder of
// inaccessible nodes, $2 the cgroup folders to join, $3 the /etc overlay's
// folder ("": none), $4 "true" to stand in for the system manager too.
const startScript = `
for cg in $2; do echo $$ > "$cg/cgroup.procs"; done
mount --make-rshared /
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/systemd/inaccessible /run/systemd/journal /run/user /run/log
if [ -n "$3" ]; then
	mount -t overlay overlay -o "lowerdir=/etc,upperdir=$3/upper,workdir=$3/work" /etc
fi
if [ "$4" = true ]; then
	# Empty: the host's own units (its timers...) are not this manager's.
	mkdir -p /etc/systemd/system
	mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system
	ln -s "$XDG_RUNTIME_DIR/systemd/private" /run/systemd/private
fi
mount --bind "$1" /run/systemd/inaccessible
mkdir -m 0755 "$XDG_RUNTIME_DIR"
ln -s "$XDG_RUNTIME_DIR" /run/user/0
mkdir -m 0755 /run/sshd
/lib/systemd/systemd-journald >/dev/null 2>&1 &
exec systemd --user
`

// makeEtcOverlay makes the upper and work folders of an overlay over
// /etc, with the sudoers rule (if any) in its sudoers.d.
func makeEtcOverlay(dir, sudoers string) error {
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if sudoers == "" {
		return nil
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		return errors.New("sudo is not installed (make deps installs it)")
	}
	d := filepath.Join(dir, "upper", "sudoers.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	// sudo ignores a rule file that is not root's and 0440.
	return os.WriteFile(filepath.Join(d, "unibus-test"), []byte(sudoers+"\n"), 0o440)
}

// Need skips when this machine cannot run the harness at all:
// not root, a tool missing, or mount namespaces refused (under CI=... it
// fails instead).
func Need(t testing.TB) {
	t.Helper()
	// In CI the harness must run: a skip there would hide a missing
	// install step.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("systemd user-manager harness: needs root (mount namespace, cgroups)")
	}
	for _, tool := range []string{"systemd", "systemctl", "unshare", "nsenter", "mount", "journalctl", "/lib/systemd/systemd-journald"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("systemd user-manager harness: %s not found (apt-get install systemd util-linux)", tool)
		}
	}
	if len(cgroupRoots()) == 0 {
		skip("systemd user-manager harness: no systemd cgroup hierarchy under /sys/fs/cgroup")
	}
	if out, err := exec.Command("unshare", "--mount", "true").CombinedOutput(); err != nil {
		skip("systemd user-manager harness: mount namespaces refused here: %v: %s", err, bytes.TrimSpace(out))
	}
}

// cgroupRoots are the hierarchies systemd tracks processes in: the unified
// one (at the top on cgroup v2, under unified/ on hybrid) and name=systemd.
func cgroupRoots() []string {
	if fileExists("/sys/fs/cgroup/cgroup.controllers") {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	for _, r := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		if fileExists(filepath.Join(r, "cgroup.procs")) {
			roots = append(roots, r)
		}
	}
	return roots
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// makeInaccessibleNodes makes what PID 1 puts in /run/systemd/inaccessible:
// one node of each type, mode 0000.
func makeInaccessibleNodes(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.Mkdir(p("dir"), 0); err != nil {
		return err
	}
	if err := os.WriteFile(p("reg"), nil, 0); err != nil {
		return err
	}
	if err := syscall.Mkfifo(p("fifo"), 0); err != nil {
		return err
	}
	if err := syscall.Mknod(p("chr"), syscall.S_IFCHR, 0); err != nil {
		return err
	}
	if err := syscall.Mknod(p("blk"), syscall.S_IFBLK, 0); err != nil {
		return err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p("sock"), Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	for _, n := range []string{"reg", "fifo", "chr", "blk", "sock"} {
		if err := os.Chmod(p(n), 0); err != nil {
			return err
		}
	}
	return nil
}

// waitRunning waits for the bus socket and for the manager to say running.
func (m *Manager) waitRunning(t testing.TB, exited <-chan struct{}) {
	t.Helper()
	bus := m.HostPath(runtimeDir + "/bus")
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("systemd --user exited while starting (%v); its output:\n%s", m.waitErr, m.out)
		default:
		}
		if fileExists(bus) {
			out, _ := m.Systemctl(context.Background(), "is-system-running")
			last = strings.TrimSpace(out)
			if last == "running" || last == "degraded" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("systemd --user not running after 30s (bus %s, is-system-running %q); its output:\n%s", bus, last, m.out)
}

// HostPath is where a path inside the manager's mount namespace is seen
// from the host, e.g. its bus socket for a D-Bus client outside.
func (m *Manager) HostPath(p string) string {
	return filepath.Join("/proc", strconv.Itoa(m.pid), "root", p)
}

// BusAddress is the manager's D-Bus address, usable from the host.
func (m *Manager) BusAddress() string {
	return "unix:path=" + m.HostPath(runtimeDir+"/bus")
}

// Env is what a process on the host needs to drive this manager as a
// unibus node's service manager would: XDG_RUNTIME_DIR for its private
// bus socket, and where its journal is.
func (m *Manager) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + m.HostPath(runtimeDir),
		"UNIBUS_JOURNAL_DIRECTORY=" + m.JournalDir(),
	}
}

// JournalDir is the manager's journal folder as the host sees it.
func (m *Manager) JournalDir() string { return m.HostPath("/run/log/journal") }

// Nsenter is the command prefix that runs a program in the manager's
// mount namespace without its environment (a daemon such as sshd that
// sets up its own).
func (m *Manager) Nsenter() []string {
	return []string{"nsenter", "-t", strconv.Itoa(m.pid), "-m", "--"}
}

// RuntimeDir is the manager's XDG_RUNTIME_DIR inside its namespace.
func (m *Manager) RuntimeDir() string { return runtimeDir }

// StateDir is the manager's %S: units' StateDirectory= folders are in it.
func (m *Manager) StateDir() string { return filepath.Join(m.home, ".local", "state") }

// UnitDir is where a unit file placed (not linked) is found by the manager.
func (m *Manager) UnitDir() string { return filepath.Join(m.configHome, "systemd", "user") }

// Command runs name inside the manager's mount namespace with its
// environment, so systemctl, systemd-run and systemd-analyze see the tmpfs
// /run/systemd that tells them a systemd runs.
func (m *Manager) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"-t", strconv.Itoa(m.pid), "-m", "--",
		"env", "XDG_RUNTIME_DIR=" + runtimeDir, "XDG_CONFIG_HOME=" + m.configHome, "HOME=" + m.home,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + runtimeDir + "/bus", "SYSTEMD_PAGER=", name}, args...)
	return exec.CommandContext(ctx, "nsenter", argv...)
}

// Systemctl runs systemctl --user ARGS in the namespace; the error holds
// its output.
func (m *Manager) Systemctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := m.Command(ctx, "systemctl", append([]string{"--user", "--no-pager"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("systemctl --user %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Show returns one property of a unit (systemctl --user show -p NAME --value).
func (m *Manager) Show(t testing.TB, unit, prop string) string {
	t.Helper()
	out, err := m.Systemctl(context.Background(), "show", "-p", prop, "--value", unit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// shutdown lets the manager stop its units (which removes their PrivateTmp
// folders), then SIGKILLs it and anything left in its cgroups.
func (m *Manager) shutdown(t testing.TB, exited <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	m.Command(ctx, "systemctl", "--user", "exit").Run()
	cancel()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Logf("systemd --user did not exit within 5s; killing it")
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.killCgroups(t)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Errorf("systemd --user (pid %d) still running 5s after SIGKILL", m.pid)
	}
	m.removeCgroups(t)
}

// killCgroups SIGKILLs every process left under the manager's cgroups and
// waits until they are empty.
func (m *Manager) killCgroups(t testing.TB) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := m.cgroupPIDs()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v still in the manager's cgroups after SIGKILL", pids)
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *Manager) cgroupPIDs() []int {
	var pids []int
	for _, cg := range m.cgroups {
		filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the manager's cgroup folders, deepest first.
func (m *Manager) removeCgroups(t testing.TB) {
	for _, cg := range m.cgroups {
		var dirs []string
		filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Errorf("removing cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// Dir is a fresh folder for what the manager's units read (their
// binaries, the node roots), removed at the end of the test. It is not
// under /tmp or /var/tmp: PrivateTmp= gives a unit its own, hiding those.
func Dir(t testing.TB) string {
	t.Helper()
	base := "/var/lib/unibus-test"
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.MkdirTemp(base, "run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
