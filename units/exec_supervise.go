package units

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// SuperviseMain is the detached supervisor of one unit, started by
// [ExecManager.Start] as "unibus exec-supervise --dir DIR": it runs the
// unit loaded in DIR/unit.json until it is told to stop (SIGTERM) or the
// service ends for good, restarting it as Restart= says. Its stdout and
// stderr are the unit's log; fd 3, if open, receives the outcome of the
// first start and is closed.
func SuperviseMain(args []string) error {
	fs := flag.NewFlagSet("exec-supervise", flag.ContinueOnError)
	dir := fs.String("dir", "", "the unit's folder under the exec manager's folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("exec-supervise: --dir is required")
	}
	var u ExecUnit
	if err := readJSON(filepath.Join(*dir, unitSnapshot), &u); err != nil {
		return err
	}
	s := &supervisor{dir: *dir, u: &u, events: make(chan event, 256)}
	// SIGCHLD first: no child may end unseen.
	chld := make(chan os.Signal, 64)
	signal.Notify(chld, syscall.SIGCHLD)
	stop := make(chan os.Signal, 4)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// Caught rather than ignored: an ignored signal stays ignored in the
	// service after exec.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGPIPE)
	if r := os.NewFile(3, "report"); r != nil {
		if _, err := r.Stat(); err == nil {
			// The starter reads until EOF: no service may inherit it.
			syscall.CloseOnExec(3)
			s.report = r
		}
	}
	// Orphaned descendants of the service are re-parented to us, so we
	// reap them and see a forking service's real main process end.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		s.logf("cannot become a subreaper: %v", e)
	}
	go s.reap(chld)
	go func() {
		for range stop {
			s.events <- event{stop: true}
		}
	}()
	return s.run()
}

const prSetChildSubreaper = 36

type event struct {
	stop   bool
	pid    int
	status syscall.WaitStatus
	notify map[string]string
}

type supervisor struct {
	dir    string
	u      *ExecUnit
	st     execState
	events chan event
	report *os.File

	notifyConn *net.UnixConn
	notifyDir  string
	mainPID    atomic.Int64
	// group is the process group of the last main process: its PID, as
	// each is started in a group of its own.
	group int

	stopRequested bool
}

func (s *supervisor) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s unibus-exec[%d]: %s\n", time.Now().Format(time.RFC3339), os.Getpid(), fmt.Sprintf(format, a...))
}

func (s *supervisor) reap(chld chan os.Signal) {
	for range chld {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			s.events <- event{pid: pid, status: ws}
		}
	}
}

func (s *supervisor) set(active, sub string) {
	s.st.ActiveState, s.st.SubState, s.st.Since = active, sub, time.Now()
	s.save()
}

func (s *supervisor) save() {
	if err := writeJSON(filepath.Join(s.dir, statusFile), s.st); err != nil {
		s.logf("cannot write status: %v", err)
	}
}

// reportStart tells the starter how the first start went, once.
func (s *supervisor) reportStart(err error) {
	if s.report == nil {
		return
	}
	msg := map[string]any{"ok": err == nil, "result": s.st.Result}
	if err != nil {
		msg["error"] = err.Error()
	}
	b, _ := json.Marshal(msg)
	s.report.Write(append(b, '\n'))
	s.report.Close()
	s.report = nil
}

func (s *supervisor) run() error {
	start, _ := procStart(os.Getpid())
	s.st = execState{UnitStatus: UnitStatus{Unit: s.u.Name, NotEnforced: s.u.NotEnforced}, SupervisorPID: os.Getpid(), SupervisorStart: start}
	syscall.Umask(int(s.u.UMask))
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if len(s.u.NotEnforced) > 0 {
		s.logf("%s: not enforced without systemd: %s", s.u.Name, strings.Join(s.u.NotEnforced, " "))
	}
	if err := s.openNotify(); err != nil {
		s.st.Result = "resources"
		s.set(StateFailed, "failed")
		s.reportStart(err)
		return err
	}
	defer s.closeNotify()
	for {
		result, err := s.startAndRun()
		s.st.Result = result
		s.cleanup()
		if err != nil {
			s.logf("%s: %v", s.u.Name, err)
		}
		// The state is saved before the starter hears of the outcome, so
		// a Status right after Start agrees with it.
		switch {
		case s.stopRequested:
			s.final()
			s.reportStart(errors.New("stopped while starting"))
			s.logf("%s: stopped (result %s)", s.u.Name, result)
			return nil
		case !s.restartWanted(result):
			s.final()
			s.reportStart(err)
			s.logf("%s: ended (result %s), no restart (Restart=%s)", s.u.Name, result, s.u.Restart)
			return nil
		}
		s.set(StateActivating, "auto-restart")
		s.reportStart(err)
		s.logf("%s: result %s, restarting in %s (Restart=%s)", s.u.Name, result, s.u.RestartDelay, s.u.Restart)
		if s.sleep(s.u.RestartDelay) {
			s.st.Result = "success"
			s.set(StateInactive, "dead")
			return nil
		}
		s.st.NRestarts++
	}
}

func (s *supervisor) final() {
	if s.st.Result == "success" {
		s.set(StateInactive, "dead")
	} else {
		s.set(StateFailed, "failed")
	}
}

// sleep waits d; true if a stop came meanwhile.
func (s *supervisor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return false
		case ev := <-s.events:
			if ev.stop {
				s.stopRequested = true
				return true
			}
		}
	}
}

func (s *supervisor) restartWanted(result string) bool {
	switch s.u.Restart {
	case "always":
		return true
	case "on-success":
		return result == "success"
	case "on-failure":
		return result != "success"
	case "on-abnormal":
		return slices.Contains([]string{"signal", "core-dump", "timeout", "watchdog"}, result)
	case "on-abort":
		return result == "signal" || result == "core-dump"
	}
	return false
}

func newInvocationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startAndRun is one activation: set-up, ExecStartPre=, ExecStart=, READY,
// running until the main process ends or a stop. It returns systemd's
// result for it.
func (s *supervisor) startAndRun() (string, error) {
	s.st.InvocationID = newInvocationID()
	s.st.MainPID, s.st.MainStart, s.st.StatusText = 0, 0, ""
	s.mainPID.Store(0)
	s.set(StateActivating, "start-pre")
	env, wd, err := s.prepare()
	if err != nil {
		return "resources", err
	}
	deadline := time.Now().Add(s.u.TimeoutStart)
	if s.u.TimeoutStart == infinity {
		deadline = time.Time{}
	}
	for _, c := range s.u.ExecStartPre {
		pid, err := s.spawn(c, env, wd)
		if err != nil {
			if c.IgnoreFailure {
				continue
			}
			return "exit-code", err
		}
		ws, result := s.waitControl(pid, deadline)
		if result != "" {
			return result, fmt.Errorf("ExecStartPre=%s: %s", c.Path, result)
		}
		if ws.ExitStatus() != 0 || ws.Signaled() {
			if c.IgnoreFailure {
				continue
			}
			return "exit-code", fmt.Errorf("ExecStartPre=%s failed: %s", c.Path, describe(ws))
		}
	}

	c := s.u.ExecStart[0]
	pid, err := s.spawn(c, env, wd)
	if err != nil {
		s.st.ExecMainCode, s.st.ExecMainStatus = "exited", 203
		return "exit-code", err
	}
	s.st.MainPID, s.group = pid, pid
	s.st.MainStart, _ = procStart(pid)
	s.mainPID.Store(int64(pid))
	ready := s.u.Type != "notify"
	if ready {
		s.set(StateActive, "running")
		s.reportStart(nil)
	} else {
		s.set(StateActivating, "start")
	}
	var timer <-chan time.Time
	if !ready && !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	for {
		select {
		case <-timer:
			s.logf("%s: no READY=1 within TimeoutStartSec=%s; stopping it", s.u.Name, s.u.TimeoutStart)
			s.stopService()
			return "timeout", fmt.Errorf("start timed out after %s without READY=1", s.u.TimeoutStart)
		case ev := <-s.events:
			switch {
			case ev.stop:
				s.stopRequested = true
				return s.stopService(), nil
			case ev.notify != nil:
				if s.onNotify(ev.notify) && !ready {
					ready, timer = true, nil
					s.set(StateActive, "running")
					s.reportStart(nil)
				}
			case ev.pid == int(s.mainPID.Load()):
				s.recordExit(ev.status)
				result := exitResult(ev.status)
				s.killRest()
				if !ready {
					if result == "success" {
						result = "protocol" // ended before READY=1
					}
					return result, fmt.Errorf("main process ended before READY=1: %s", describe(ev.status))
				}
				return result, fmt.Errorf("main process ended: %s", describe(ev.status))
			}
		}
	}
}

func (s *supervisor) recordExit(ws syscall.WaitStatus) {
	switch {
	case ws.Exited():
		s.st.ExecMainCode, s.st.ExecMainStatus = "exited", ws.ExitStatus()
	case ws.CoreDump():
		s.st.ExecMainCode, s.st.ExecMainStatus = "dumped", int(ws.Signal())
	default:
		s.st.ExecMainCode, s.st.ExecMainStatus = "killed", int(ws.Signal())
	}
	s.st.MainPID = 0
	s.mainPID.Store(0)
}

// exitResult is systemd's verdict on a main process that ended by itself:
// exit 0 and the clean signals (HUP, INT, TERM, PIPE) are success.
func exitResult(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return "success"
	case ws.Exited():
		return "exit-code"
	case ws.CoreDump():
		return "core-dump"
	}
	switch ws.Signal() {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE:
		return "success"
	}
	return "signal"
}

func describe(ws syscall.WaitStatus) string {
	if ws.Exited() {
		return fmt.Sprintf("code=exited, status=%d", ws.ExitStatus())
	}
	return fmt.Sprintf("code=killed, signal=%s", strings.ToUpper(sigName(ws.Signal())))
}

func sigName(sig syscall.Signal) string {
	for n, v := range signalNames {
		if v == sig {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(sig))
}

// waitControl waits for a control process (ExecStartPre=) until deadline;
// a stop or the timeout kills its group. result is "" when it ended by
// itself.
func (s *supervisor) waitControl(pid int, deadline time.Time) (syscall.WaitStatus, string) {
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	for {
		select {
		case <-timer:
			syscall.Kill(-pid, syscall.SIGKILL)
			return 0, "timeout"
		case ev := <-s.events:
			switch {
			case ev.stop:
				s.stopRequested = true
				syscall.Kill(-pid, s.u.KillSignal)
				return 0, "success"
			case ev.pid == pid:
				return ev.status, ""
			case ev.notify != nil:
				s.onNotify(ev.notify)
			}
		}
	}
}

// onNotify applies an sd_notify message; true on READY=1.
func (s *supervisor) onNotify(m map[string]string) bool {
	if v, ok := m["STATUS"]; ok {
		s.st.StatusText = v
	}
	if v, ok := m["MAINPID"]; ok {
		if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
			s.st.MainPID = pid
			s.st.MainStart, _ = procStart(pid)
			s.mainPID.Store(int64(pid))
		}
	}
	if m["STOPPING"] == "1" && s.st.ActiveState == StateActive {
		s.st.ActiveState, s.st.SubState = StateDeactivating, "stop-sigterm"
	}
	s.save()
	return m["READY"] == "1"
}

// stopService stops what runs: KillSignal, TimeoutStopSec, then
// FinalKillSignal (SIGKILL) to the whole process group. It returns
// success, or timeout when SIGKILL was needed.
func (s *supervisor) stopService() string {
	pid := int(s.mainPID.Load())
	s.set(StateDeactivating, "stop-sigterm")
	if pid == 0 {
		s.killRest()
		return "success"
	}
	s.signal(pid, s.u.KillSignal, s.u.KillMode == "control-group")
	if s.u.KillSignal != syscall.SIGKILL {
		s.signal(pid, syscall.SIGCONT, s.u.KillMode == "control-group")
	}
	if s.waitGone(pid, s.u.TimeoutStop) {
		return "success"
	}
	if !s.u.SendSIGKILL {
		s.logf("%s: still running after TimeoutStopSec=%s; SendSIGKILL=no leaves it", s.u.Name, s.u.TimeoutStop)
		return "timeout"
	}
	s.logf("%s: still running after TimeoutStopSec=%s; sending %s to the process group", s.u.Name, s.u.TimeoutStop, sigName(s.u.FinalKillSignal))
	s.set(StateDeactivating, "stop-sigkill")
	s.signal(pid, s.u.FinalKillSignal, s.u.KillMode != "process")
	s.waitGone(pid, 10*time.Second)
	return "timeout"
}

// killRest ends what is left of the group after the main process ended.
func (s *supervisor) killRest() {
	if s.u.KillMode == "process" || s.group == 0 {
		return
	}
	g := s.group
	if syscall.Kill(-g, 0) != nil {
		return
	}
	syscall.Kill(-g, s.u.KillSignal)
	syscall.Kill(-g, syscall.SIGCONT)
	if !s.waitGroup(g, s.u.TimeoutStop) && s.u.SendSIGKILL {
		syscall.Kill(-g, s.u.FinalKillSignal)
		s.waitGroup(g, 5*time.Second)
	}
}

func (s *supervisor) signal(pid int, sig syscall.Signal, group bool) {
	if group {
		syscall.Kill(-s.group, sig)
	}
	syscall.Kill(pid, sig)
}

// waitGone waits for the main process to end (and, with
// KillMode=control-group, its whole group) for at most d.
func (s *supervisor) waitGone(pid int, d time.Duration) bool {
	var deadline <-chan time.Time
	if d != infinity {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	mainDone := false
	for {
		select {
		case <-deadline:
			return false
		case ev := <-s.events:
			if ev.pid != 0 && ev.pid == pid {
				s.recordExit(ev.status)
				mainDone = true
			} else if ev.notify != nil {
				s.onNotify(ev.notify)
			}
		case <-tick.C:
		}
		if mainDone && (s.u.KillMode != "control-group" || syscall.Kill(-s.group, 0) != nil) {
			return true
		}
	}
}

func (s *supervisor) waitGroup(g int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if syscall.Kill(-g, 0) != nil {
			return true
		}
		select {
		case ev := <-s.events:
			if ev.stop {
				s.stopRequested = true
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// cleanup removes the credentials: they exist only while the unit runs.
func (s *supervisor) cleanup() {
	if err := os.RemoveAll(s.u.CredentialsDir); err != nil {
		s.logf("cannot remove %s: %v", s.u.CredentialsDir, err)
	}
}
