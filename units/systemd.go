package units

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// SystemdManager drives systemd over D-Bus: the system manager (PID 1) for
// system scope, the user's manager for user scope. It talks to the
// manager's private socket where it can, as systemctl does, so no D-Bus
// daemon is needed.
type SystemdManager struct {
	scope Scope
	// Address is the manager's D-Bus address; empty picks the scope's
	// default (see busAddresses).
	Address string
	// JournalDirectory is where the node's journal is when it is not in
	// journalctl's default place (a container, a test's private
	// namespace); empty for the default.
	JournalDirectory string

	mu   sync.Mutex
	conn *sddbus.Conn
}

// UnreachableError: no service manager answered (none runs, or not for
// this user): plan can still show files, apply cannot start anything.
type UnreachableError struct{ msg string }

func (e *UnreachableError) Error() string { return e.msg }

// NewSystemdManager drives the manager of scope. UNIBUS_JOURNAL_DIRECTORY,
// when set, says where its journal is.
func NewSystemdManager(scope Scope) *SystemdManager {
	return &SystemdManager{scope: scope, JournalDirectory: os.Getenv("UNIBUS_JOURNAL_DIRECTORY")}
}

func (m *SystemdManager) Name() string { return "systemd" }

// busAddresses are tried in order: the manager's private socket (what
// systemctl uses first; it needs no dbus-daemon), then the bus.
func (m *SystemdManager) busAddresses() []string {
	if m.Address != "" {
		return []string{m.Address}
	}
	if m.scope == System {
		return []string{"unix:path=/run/systemd/private", "unix:path=/run/dbus/system_bus_socket"}
	}
	var out []string
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		out = append(out, "unix:path="+filepath.Join(rt, "systemd/private"))
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		out = append(out, a)
	}
	return out
}

// connect returns the shared connection, dialling it on first use (and
// again after it broke, as when the manager re-executed).
func (m *SystemdManager) connect(ctx context.Context) (*sddbus.Conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil && m.conn.Connected() {
		return m.conn, nil
	}
	addrs := m.busAddresses()
	if len(addrs) == 0 {
		return nil, &UnreachableError{"no systemd user manager to talk to: XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS are unset"}
	}
	var errs []error
	for _, addr := range addrs {
		c, err := sddbus.NewConnection(func() (*dbus.Conn, error) { return dial(ctx, addr) })
		if err == nil {
			m.conn = c
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, &UnreachableError{fmt.Sprintf("cannot reach the systemd %s manager: %v", m.scope, errors.Join(errs...))}
}

// dial opens one authenticated connection. The private socket speaks
// D-Bus without a bus daemon, so it takes no Hello.
func dial(ctx context.Context, addr string) (*dbus.Conn, error) {
	c, err := dbus.Dial(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, err
	}
	if !strings.HasSuffix(addr, "/systemd/private") {
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close ends the D-Bus connection.
func (m *SystemdManager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

// Version is systemd's own, such as "252.38-1~deb12u1".
func (m *SystemdManager) Version(ctx context.Context) (string, error) {
	c, err := m.connect(ctx)
	if err != nil {
		return "", err
	}
	v, err := c.GetManagerProperty("Version")
	if err != nil {
		return "", fmt.Errorf("systemd version: %w", err)
	}
	return strings.Trim(v, `"`), nil
}

// MajorVersion is the leading number of a Version answer
// ("252.38-1~deb12u1" → 252).
func MajorVersion(v string) (int, error) {
	f := strings.TrimPrefix(v, "systemd ")
	end := strings.IndexFunc(f, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(f)
	}
	n, err := strconv.Atoi(f[:end])
	if err != nil {
		return 0, fmt.Errorf("systemd version %q: no number", v)
	}
	return n, nil
}

// UnitPath is the manager's unit search path: where it loads units and
// their drop-ins from.
func (m *SystemdManager) UnitPath(ctx context.Context) ([]string, error) {
	c, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	p, err := c.GetManagerProperty("UnitPath")
	if err != nil {
		return nil, fmt.Errorf("systemd unit path: %w", err)
	}
	// GVariant text of an array of strings: ['a', 'b'].
	var out []string
	for _, f := range strings.Split(strings.Trim(p, "[]"), ",") {
		if f = strings.Trim(strings.TrimSpace(f), `'"`); f != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

func (m *SystemdManager) Reload(ctx context.Context) error {
	c, err := m.connect(ctx)
	if err != nil {
		return err
	}
	if err := c.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

func (m *SystemdManager) Enable(ctx context.Context, unit string) error {
	c, err := m.connect(ctx)
	if err != nil {
		return err
	}
	if _, _, err := c.EnableUnitFilesContext(ctx, []string{unit}, false, true); err != nil {
		return fmt.Errorf("enable %s: %w", unit, err)
	}
	return nil
}

func (m *SystemdManager) Start(ctx context.Context, unit string) error {
	return m.job(ctx, "start", unit, (*sddbus.Conn).StartUnitContext)
}

func (m *SystemdManager) Restart(ctx context.Context, unit string) error {
	return m.job(ctx, "restart", unit, (*sddbus.Conn).RestartUnitContext)
}

func (m *SystemdManager) Stop(ctx context.Context, unit string) error {
	return m.job(ctx, "stop", unit, (*sddbus.Conn).StopUnitContext)
}

type jobFunc func(c *sddbus.Conn, ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job queues a start, restart or stop and waits for its result: done, or
// canceled, timeout, failed, dependency, skipped. For Type=notify a start
// job is done at READY=1, so done means the service is up.
func (m *SystemdManager) job(ctx context.Context, verb, unit string, queue jobFunc) error {
	c, err := m.connect(ctx)
	if err != nil {
		return err
	}
	if verb != "stop" {
		// A unit that failed before keeps its failed state and counts
		// toward its start limit; this start is a new attempt.
		c.ResetFailedUnitContext(ctx, unit)
	}
	ch := make(chan string, 1)
	queued := time.Now()
	if _, err := queue(c, ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, err)
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w (the job goes on in systemd)", verb, unit, ctx.Err())
	case result := <-ch:
		if result == "done" {
			return nil
		}
		return m.jobError(ctx, verb, unit, result, queued)
	}
}

// jobError explains a job that did not finish done: the unit's result,
// how its main process ended (systemd's own exit codes named), and the
// last lines it logged in this invocation.
func (m *SystemdManager) jobError(ctx context.Context, verb, unit, result string, queued time.Time) error {
	st, err := m.Status(ctx, unit)
	if err != nil {
		return fmt.Errorf("%s %s: job %s (%v)", verb, unit, result, err)
	}
	lines, jerr := m.journal(ctx, unit, st.InvocationID, queued, 10)
	return failure(verb, unit, result, st, lines, jerr)
}

// failure is the one-line-and-journal error of a job that did not finish
// done: the unit's result, how its main process ended (systemd's own exit
// codes named) and the last lines it logged.
func failure(verb, unit, result string, st UnitStatus, lines []string, jerr error) error {
	msg := fmt.Sprintf("%s %s failed (job %s, result: %s", verb, unit, result, st.Result)
	if st.ExecMainCode != "" {
		msg += ", main process " + st.ExecMainCode + " " + exitStatusText(st.ExecMainCode, st.ExecMainStatus)
	}
	msg += ")"
	if jerr != nil {
		msg += "; no journal to show: " + jerr.Error()
	} else if len(lines) > 0 {
		msg += "; last lines of its journal:\n  " + strings.Join(lines, "\n  ")
	}
	return errors.New(msg)
}

// journal is the last n lines the unit logged since the job was queued.
// The invocation ID finds them where journald can tell the unit from the
// cgroup (a user@.service under a real PID 1); elsewhere the unit's cgroup
// does, which systemd forgets once the unit is dead, so it is rebuilt from
// the manager's and the slice's. journald reads a stream after its writer
// is gone, so an empty answer is asked again briefly.
func (m *SystemdManager) journal(ctx context.Context, unit, invocation string, since time.Time, n int) ([]string, error) {
	c, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	cgroup := ""
	if props, err := c.GetUnitTypePropertiesContext(ctx, unit, "Service"); err == nil {
		if root, err := c.GetManagerProperty("ControlGroup"); err == nil {
			cgroup = path.Join(strings.Trim(root, `"`), slicePath(str(props["Slice"])), unit)
		}
	}
	return journalLines(ctx, runLocal, m.JournalDirectory, invocation, cgroup, since, n)
}

// runLocal runs a command on this machine; its error holds its stderr.
func runLocal(ctx context.Context, argv []string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return out, fmt.Errorf("%s: %s", argv[0], strings.TrimSpace(string(ee.Stderr)))
	}
	return out, err
}

// journalLines asks journalctl, through run, for the last n lines of the
// unit's invocation or cgroup since `since`.
func journalLines(ctx context.Context, run func(context.Context, []string) ([]byte, error), dir, invocation, cgroup string, since time.Time, n int) ([]string, error) {
	args := []string{"journalctl", "--no-pager", "-o", "cat", "-n", strconv.Itoa(n),
		fmt.Sprintf("--since=@%d.%06d", since.Unix(), since.Nanosecond()/1000)}
	if dir != "" {
		args = append(args, "--directory", dir)
	}
	var matches []string
	if invocation != "" {
		matches = append(matches, "_SYSTEMD_INVOCATION_ID="+invocation, "INVOCATION_ID="+invocation, "USER_INVOCATION_ID="+invocation)
	}
	if cgroup != "" {
		matches = append(matches, "_SYSTEMD_CGROUP="+cgroup)
	}
	for i, mt := range matches {
		if i > 0 {
			args = append(args, "+")
		}
		args = append(args, mt)
	}
	for attempt := 0; ; attempt++ {
		out, err := run(ctx, args)
		if err != nil {
			return nil, err
		}
		s := strings.TrimSpace(string(out))
		if s != "" && s != "-- No entries --" {
			return strings.Split(s, "\n"), nil
		}
		if attempt == 5 {
			return nil, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *SystemdManager) Status(ctx context.Context, unit string) (UnitStatus, error) {
	c, err := m.connect(ctx)
	if err != nil {
		return UnitStatus{}, err
	}
	u, err := c.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	st := UnitStatus{
		Unit:             unit,
		ActiveState:      str(u["ActiveState"]),
		SubState:         str(u["SubState"]),
		NeedDaemonReload: u["NeedDaemonReload"] == true,
	}
	if id, ok := u["InvocationID"].([]byte); ok && len(id) > 0 {
		st.InvocationID = hex.EncodeToString(id)
	}
	if str(u["LoadState"]) == "not-found" {
		return st, nil
	}
	svc, err := c.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return UnitStatus{}, fmt.Errorf("status of %s: %w", unit, err)
	}
	st.Result = str(svc["Result"])
	st.NRestarts = int(num(svc["NRestarts"]))
	st.MainPID = int(num(svc["ExecMainPID"]))
	if st.ActiveState != StateActive && st.ActiveState != StateActivating && st.ActiveState != StateDeactivating {
		st.MainPID = 0 // ExecMainPID keeps the last one
	}
	st.StatusText = str(svc["StatusText"])
	if code := int(num(svc["ExecMainCode"])); code != 0 {
		st.ExecMainCode = map[int]string{1: "exited", 2: "killed", 3: "dumped"}[code]
		st.ExecMainStatus = int(num(svc["ExecMainStatus"]))
	}
	return st, nil
}

// slicePath is the cgroup path of a slice: "a-b.slice" is
// a.slice/a-b.slice, the root slice "-.slice" is "".
func slicePath(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return ""
	}
	parts := strings.Split(name, "-")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "-") + ".slice"
	}
	return path.Join(out...)
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) int64 {
	switch n := v.(type) {
	case uint32:
		return int64(n)
	case int32:
		return int64(n)
	case uint64:
		return int64(n)
	case int64:
		return n
	}
	return 0
}
