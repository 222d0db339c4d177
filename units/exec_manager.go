package units

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ExecVersion is the exec manager's version, which Version reports.
const ExecVersion = "1"

// ExecManager runs a node's units without systemd: each started unit gets
// a detached supervisor process (its own session, so it outlives the
// command that started it) that runs the unit as systemd would, with
// credentials, a notify socket, Restart= and the stop sequence. What it
// cannot enforce (sandboxing, resource control) is listed in
// UnitStatus.NotEnforced and logged.
//
// Everything the manager keeps is under [ManagerDir]: per unit, the unit
// as loaded (unit.json), status.json, the log, and while it runs the
// credentials folder. %S is [StateRoot]: <root>/.local/state for user
// scope, <root>/var/lib for system scope.
type ExecManager struct {
	Root  string
	Scope Scope
	// Supervisor is the command line that runs [SuperviseMain]; "--dir
	// DIR" is added. Default: this executable's "exec-supervise".
	Supervisor []string
	// Log, if set, receives what the operator should know: the
	// directives a unit sets that are not enforced, once per load.
	Log func(string)
}

var _ Manager = (*ExecManager)(nil)

// NewExecManager manages the units of the node rooted at root.
func NewExecManager(root string, scope Scope) *ExecManager {
	return &ExecManager{Root: root, Scope: scope}
}

func (m *ExecManager) Name() string { return "exec" }

func (m *ExecManager) Version(context.Context) (string, error) {
	return "unibus-exec " + ExecVersion, nil
}

func (m *ExecManager) dir(unit string) string {
	return filepath.Join(ManagerDir(m.root(), m.Scope), unit)
}

func (m *ExecManager) root() string {
	if r, err := filepath.Abs(m.Root); err == nil {
		return r
	}
	return m.Root
}

// load reads the unit's files now and keeps the result for later starts.
func (m *ExecManager) load(unit string) (*ExecUnit, error) {
	u, err := LoadExecUnit(m.root(), m.Scope, unit)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.dir(unit), 0o700); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(m.dir(unit), unitSnapshot), u); err != nil {
		return nil, err
	}
	if m.Log != nil && len(u.NotEnforced) > 0 {
		m.Log(fmt.Sprintf("%s: the exec manager does not enforce %s", unit, strings.Join(u.NotEnforced, " ")))
	}
	return u, nil
}

// loaded is the unit as last loaded, or loads it on first use (as systemd
// loads a unit the first time it is referred to).
func (m *ExecManager) loaded(unit string) (*ExecUnit, error) {
	var u ExecUnit
	err := readJSON(filepath.Join(m.dir(unit), unitSnapshot), &u)
	if errors.Is(err, fs.ErrNotExist) {
		return m.load(unit)
	}
	return &u, err
}

// Reload re-reads every service under the node's unit folder, and forgets
// units whose file is gone. Every unit that fails to load is reported.
func (m *ExecManager) Reload(context.Context) error {
	unitDir := filepath.Join(m.root(), filepath.FromSlash(m.Scope.UnitDir()))
	names := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(unitDir, "*.service"))
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	known, _ := os.ReadDir(ManagerDir(m.root(), m.Scope))
	for _, k := range known {
		if k.IsDir() && !names[k.Name()] {
			os.Remove(filepath.Join(m.dir(k.Name()), unitSnapshot))
		}
	}
	var errs []error
	for n := range names {
		if _, err := m.load(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// state reads status.json and whether its supervisor still runs.
func (m *ExecManager) state(unit string) (execState, bool, error) {
	var st execState
	err := readJSON(filepath.Join(m.dir(unit), statusFile), &st)
	if errors.Is(err, fs.ErrNotExist) {
		return execState{UnitStatus: UnitStatus{Unit: unit, ActiveState: StateInactive, SubState: "dead"}}, false, nil
	}
	if err != nil {
		return st, false, err
	}
	return st, alive(st.SupervisorPID, st.SupervisorStart), nil
}

// settled waits out a unit that is on its way up or down (a supervisor
// still stopping a service, as when the apply that asked for a restart was
// killed between the stop and the start), so Start neither returns for a
// service about to be gone nor races a supervisor on its way out.
func (m *ExecManager) settled(ctx context.Context, unit string) (execState, bool, error) {
	// Bounded: a service crash-looping through auto-restart never settles.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		st, up, err := m.state(unit)
		if err != nil || !up || (st.ActiveState != StateDeactivating && st.ActiveState != StateActivating) {
			return st, up, err
		}
		select {
		case <-ctx.Done():
			return st, up, fmt.Errorf("start %s: still %s: %w", unit, st.ActiveState, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (m *ExecManager) Status(_ context.Context, unit string) (UnitStatus, error) {
	st, up, err := m.state(unit)
	if err != nil {
		return UnitStatus{}, err
	}
	if !up && st.ActiveState != StateInactive && st.ActiveState != StateFailed {
		// The supervisor was killed: nothing restarts or stops the service.
		st.ActiveState, st.SubState, st.Result = StateFailed, "failed", "supervisor-gone"
	}
	var u ExecUnit
	if err := readJSON(filepath.Join(m.dir(unit), unitSnapshot), &u); err == nil {
		st.NotEnforced = u.NotEnforced
		st.NeedDaemonReload = changedOnDisk(&u)
	}
	return st.UnitStatus, nil
}

// changedOnDisk says whether the unit's files differ from what was loaded.
func changedOnDisk(u *ExecUnit) bool {
	base, dropIns, err := UnitFiles(filepath.Join(u.Root, filepath.FromSlash(u.Scope.UnitDir())), u.Name)
	if err != nil {
		return true
	}
	now := append([]string{base}, dropIns...)
	if len(now) != len(u.Files) {
		return true
	}
	for i, f := range now {
		data, err := os.ReadFile(f)
		sum := sha256.Sum256(data)
		if err != nil || f != u.Files[i] || hex.EncodeToString(sum[:]) != u.Hashes[f] {
			return true
		}
	}
	return false
}

func (m *ExecManager) Enable(_ context.Context, unit string) error {
	if _, err := m.loaded(unit); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(m.dir(unit), enabledFile), nil, 0o600)
}

func (m *ExecManager) Start(ctx context.Context, unit string) error {
	st, up, err := m.settled(ctx, unit)
	if err != nil {
		return err
	}
	if up && st.ActiveState == StateActive {
		return nil
	}
	if _, err := m.loaded(unit); err != nil {
		return err
	}
	dir := m.dir(unit)
	logPath := filepath.Join(dir, logFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	argv := m.Supervisor
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		argv = []string{exe, "exec-supervise"}
	}
	cmd := exec.Command(argv[0], append(argv[1:len(argv):len(argv)], "--dir", dir)...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, "/"
	cmd.ExtraFiles = []*os.File{w}
	// A session of its own: no terminal signal or exiting parent stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start %s: cannot run the exec supervisor %s: %w", unit, argv[0], err)
	}
	w.Close()
	// Reap it if this process outlives it; otherwise init adopts it.
	go cmd.Wait()

	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	var report []byte
	select {
	case <-ctx.Done():
		return fmt.Errorf("start %s: %w (the unit keeps starting; see %s)", unit, ctx.Err(), logPath)
	case report = <-done:
	}
	var res struct {
		OK     bool   `json:"ok"`
		Result string `json:"result"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(report), &res); err != nil {
		res.Error, res.Result = "the supervisor ended without a report", "resources"
	}
	if res.OK {
		return nil
	}
	return m.startError(unit, res.Result, res.Error)
}

func (m *ExecManager) startError(unit, result, msg string) error {
	logPath := filepath.Join(m.dir(unit), logFile)
	lines := tail(logPath, 10)
	return fmt.Errorf("start %s failed (result: %s): %s; last lines of %s:\n  %s",
		unit, result, msg, logPath, strings.Join(lines, "\n  "))
}

func (m *ExecManager) Restart(ctx context.Context, unit string) error {
	if err := m.Stop(ctx, unit); err != nil {
		return err
	}
	return m.Start(ctx, unit)
}

// Stop asks the supervisor to stop the unit (it applies KillSignal,
// TimeoutStopSec and SIGKILL) and waits until it has exited. If the
// supervisor itself is gone, Stop ends the service's process group.
func (m *ExecManager) Stop(ctx context.Context, unit string) error {
	st, up, err := m.state(unit)
	if err != nil {
		return err
	}
	if !up {
		return m.stopOrphan(ctx, unit, st)
	}
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", unit, err)
	}
	for alive(st.SupervisorPID, st.SupervisorStart) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w (its supervisor, PID %d, is still stopping it)", unit, ctx.Err(), st.SupervisorPID)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// stopOrphan ends a service whose supervisor was killed: its main
// process, checked against its start time, and its group.
func (m *ExecManager) stopOrphan(ctx context.Context, unit string, st execState) error {
	if st.MainPID == 0 || !alive(st.MainPID, st.MainStart) {
		return nil
	}
	u, err := m.loaded(unit)
	if err != nil {
		return err
	}
	g := st.MainPID
	syscall.Kill(-g, u.KillSignal)
	deadline := time.Now().Add(u.TimeoutStop)
	for syscall.Kill(-g, 0) == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-g, syscall.SIGKILL)
	os.RemoveAll(u.CredentialsDir)
	st.ActiveState, st.SubState, st.MainPID = StateInactive, "dead", 0
	return writeJSON(filepath.Join(m.dir(unit), statusFile), st)
}
