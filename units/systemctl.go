package units

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Runner runs a command on a node (an SSH session): argv as given, no
// shell in between; its error holds the command's stderr.
type Runner interface {
	Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error)
}

// SystemctlManager drives systemd on a node through systemctl and
// journalctl run there, for a node reached over SSH. It reports what
// [SystemdManager] reports over D-Bus, and fails a start the same way.
type SystemctlManager struct {
	scope Scope
	run   Runner

	mu      sync.Mutex
	version string   // the manager's, once read
	path    []string // its unit search path, read with the version
	reading *propsRead
}

// NewSystemctlManager drives the node's manager of scope through r.
func NewSystemctlManager(scope Scope, r Runner) *SystemctlManager {
	return &SystemctlManager{scope: scope, run: r}
}

func (m *SystemctlManager) Name() string { return "systemd" }

// prelude is the shell that finds the scope's manager before systemctl
// runs. A user manager is found through XDG_RUNTIME_DIR, which a non-PAM
// SSH session may lack, so it defaults to the user's /run/user/UID as
// pam_systemd sets it. The manager's sockets are looked for in the shell
// (its private one, then the bus: those systemctl tries), so a node where
// none runs answers at once, as D-Bus does locally, rather than after a
// systemctl of its own finds nothing.
func (m *SystemctlManager) prelude() string {
	if m.scope == User {
		// The uid from /proc with builtins: no id process per command.
		return `if [ -z "$XDG_RUNTIME_DIR" ]; then
	while read -r k uid _; do [ "$k" = Uid: ] && break; done </proc/self/status
	XDG_RUNTIME_DIR=/run/user/$uid
fi
[ -S "$XDG_RUNTIME_DIR/systemd/private" ] || [ -S "$XDG_RUNTIME_DIR/bus" ] || { echo "Failed to connect to bus: no manager socket in $XDG_RUNTIME_DIR" >&2; exit 1; }
export XDG_RUNTIME_DIR
`
	}
	return `[ -S /run/systemd/private ] || [ -S /run/dbus/system_bus_socket ] || { echo "Failed to connect to bus: no manager socket in /run" >&2; exit 1; }
`
}

// systemctl is the scope's systemctl command.
func (m *SystemctlManager) systemctl() []string {
	if m.scope == User {
		return []string{"systemctl", "--user"}
	}
	return []string{"systemctl"}
}

// command runs a systemd tool for the scope.
func (m *SystemctlManager) command(ctx context.Context, tool string, args ...string) ([]byte, error) {
	argv := []string{tool}
	if tool == "systemctl" {
		argv = append([]string{"sh", "-c", m.prelude() + `exec "$@"`, "sh"}, m.systemctl()...)
	}
	// (journalctl needs no manager. Without --user, it reads every
	// journal the login may read, the user's own included; the matches
	// pick the unit's lines.)
	out, err := m.run.Run(ctx, append(argv, args...), nil)
	return out, m.unreachable(err)
}

func (m *SystemctlManager) unreachable(err error) error {
	if err != nil && strings.Contains(err.Error(), "Failed to connect to bus") {
		return &UnreachableError{fmt.Sprintf("no systemd %s manager answers on the node (%v)", m.scope, err)}
	}
	return err
}

// statusProps are the unit's properties [SystemctlManager.Status] reads.
var statusProps = []string{"LoadState", "ActiveState", "SubState", "Result", "NRestarts", "ExecMainPID",
	"ExecMainCode", "ExecMainStatus", "InvocationID", "NeedDaemonReload", "StatusText"}

// ObserveShell is a POSIX shell function body, with its arguments, that
// reads what plan asks of the node's manager: its version and unit path,
// and the unit's status. A caller runs it beside other work in one
// session (the node's files: see sshnode's SnapshotWith) and gives its
// output to [SystemctlManager.Observed]. A function rather than a
// command: one process fewer on the node.
func (m *SystemctlManager) ObserveShell(unit string) (body string, args []string) {
	return m.prelude() + `u=$1; shift
"$@" show -p Version,UnitPath && exec "$@" show -p ` + strings.Join(statusProps, ",") + ` -- "$u"`, append([]string{unit}, m.systemctl()...)
}

// Observed reads the output of [SystemctlManager.ObserveShell] (err: how
// it failed, with its output): the unit's status, and the manager's
// version and unit path, which Version and UnitPath then answer without
// asking the node again.
func (m *SystemctlManager) Observed(unit string, out []byte, err error) (UnitStatus, error) {
	if err := m.unreachable(err); err != nil {
		return UnitStatus{}, err
	}
	v := showProps(out)
	if strings.TrimSpace(v["Version"]) == "" {
		return UnitStatus{}, errors.New("systemctl show: the manager reports no Version")
	}
	m.mu.Lock()
	if m.version == "" {
		m.version, m.path = strings.TrimSpace(v["Version"]), strings.Fields(v["UnitPath"])
	}
	m.mu.Unlock()
	return unitStatus(unit, v)
}

// showProps reads systemctl show's KEY=VALUE lines.
func showProps(out []byte) map[string]string {
	v := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, val, ok := strings.Cut(l, "="); ok {
			v[k] = val
		}
	}
	return v
}

// Version is the manager's own ("252.38-1~deb12u1"), as over D-Bus. It
// is read once, with the unit search path: one session for both.
func (m *SystemctlManager) Version(ctx context.Context) (string, error) {
	if err := m.managerProps(ctx); err != nil {
		return "", err
	}
	return m.version, nil
}

// UnitPath is the manager's unit search path.
func (m *SystemctlManager) UnitPath(ctx context.Context) ([]string, error) {
	if err := m.managerProps(ctx); err != nil {
		return nil, err
	}
	return m.path, nil
}

// managerProps reads the version and unit path once. Callers at the same
// time (every node on one connection) share the one read under way; an
// error is not kept, so a manager started later is seen.
func (m *SystemctlManager) managerProps(ctx context.Context) error {
	m.mu.Lock()
	if m.version != "" {
		m.mu.Unlock()
		return nil
	}
	if c := m.reading; c != nil {
		m.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &propsRead{done: make(chan struct{})}
	m.reading = c
	m.mu.Unlock()

	version, unitPath, err := m.readManagerProps(ctx)
	m.mu.Lock()
	if err == nil {
		m.version, m.path = version, unitPath
	}
	m.reading = nil
	m.mu.Unlock()
	c.err = err
	close(c.done)
	return err
}

// propsRead is a read of the manager's properties under way.
type propsRead struct {
	done chan struct{}
	err  error
}

func (m *SystemctlManager) readManagerProps(ctx context.Context) (string, []string, error) {
	out, err := m.command(ctx, "systemctl", "show", "-p", "Version,UnitPath")
	if err != nil {
		return "", nil, err
	}
	v := showProps(out)
	if strings.TrimSpace(v["Version"]) == "" {
		return "", nil, errors.New("systemctl show: the manager reports no Version")
	}
	return strings.TrimSpace(v["Version"]), strings.Fields(v["UnitPath"]), nil
}

func (m *SystemctlManager) Reload(ctx context.Context) error {
	_, err := m.command(ctx, "systemctl", "daemon-reload")
	return err
}

func (m *SystemctlManager) Enable(ctx context.Context, unit string) error {
	_, err := m.command(ctx, "systemctl", "enable", "--", unit)
	return err
}

func (m *SystemctlManager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "start", unit)
}

func (m *SystemctlManager) Restart(ctx context.Context, unit string) error {
	return m.job(ctx, "restart", unit)
}

func (m *SystemctlManager) Stop(ctx context.Context, unit string) error {
	return m.job(ctx, "stop", unit)
}

// job runs systemctl VERB, which waits for the job's result (for
// Type=notify, READY=1); a failure is explained as SystemdManager does.
func (m *SystemctlManager) job(ctx context.Context, verb, unit string) error {
	if verb != "stop" {
		m.command(ctx, "systemctl", "reset-failed", "--", unit)
	}
	queued := time.Now()
	_, err := m.command(ctx, "systemctl", verb, "--", unit)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w (the job goes on in systemd)", verb, unit, ctx.Err())
	}
	st, serr := m.Status(ctx, unit)
	if serr != nil {
		return fmt.Errorf("%s %s: %v (%v)", verb, unit, err, serr)
	}
	cgroup := ""
	if root, err := m.command(ctx, "systemctl", "show", "-p", "ControlGroup", "--value"); err == nil {
		if slice, err := m.command(ctx, "systemctl", "show", "-p", "Slice", "--value", "--", unit); err == nil {
			cgroup = path.Join(strings.TrimSpace(string(root)), slicePath(strings.TrimSpace(string(slice))), unit)
		}
	}
	run := func(ctx context.Context, argv []string) ([]byte, error) {
		return m.command(ctx, argv[0], argv[1:]...)
	}
	lines, jerr := journalLines(ctx, run, "", st.InvocationID, cgroup, queued, 10)
	return failure(verb, unit, "failed", st, lines, jerr)
}

func (m *SystemctlManager) Status(ctx context.Context, unit string) (UnitStatus, error) {
	out, err := m.command(ctx, "systemctl", "show", "-p", strings.Join(statusProps, ","), "--", unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	return unitStatus(unit, showProps(out))
}

// unitStatus is the unit's status from its statusProps.
func unitStatus(unit string, v map[string]string) (UnitStatus, error) {
	if v["ActiveState"] == "" {
		return UnitStatus{}, errors.New("status of " + unit + ": systemctl show answered no ActiveState")
	}
	st := UnitStatus{Unit: unit, ActiveState: v["ActiveState"], SubState: v["SubState"], Result: v["Result"],
		InvocationID: v["InvocationID"], NeedDaemonReload: v["NeedDaemonReload"] == "yes", StatusText: v["StatusText"]}
	st.NRestarts, _ = strconv.Atoi(v["NRestarts"])
	if st.ActiveState == StateActive || st.ActiveState == StateActivating || st.ActiveState == StateDeactivating {
		st.MainPID, _ = strconv.Atoi(v["ExecMainPID"])
	}
	if code, _ := strconv.Atoi(v["ExecMainCode"]); code != 0 {
		st.ExecMainCode = map[int]string{1: "exited", 2: "killed", 3: "dumped"}[code]
		st.ExecMainStatus, _ = strconv.Atoi(v["ExecMainStatus"])
	}
	return st, nil
}
