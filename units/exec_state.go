package units

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Files in a unit's folder under [ManagerDir].
const (
	unitSnapshot = "unit.json"   // the unit as last loaded (Reload or first Start)
	statusFile   = "status.json" // the supervisor's view, rewritten atomically
	logFile      = "log"         // the service's stdout and stderr, and the supervisor's lines
	enabledFile  = "enabled"
)

// execState is status.json: the unit's status and who supervises it.
type execState struct {
	UnitStatus
	SupervisorPID   int       `json:"supervisor_pid"`
	SupervisorStart uint64    `json:"supervisor_start"` // /proc start time, against PID reuse
	MainStart       uint64    `json:"main_start,omitempty"`
	Since           time.Time `json:"since"`
}

// writeFileAtomic writes data to a temporary file in the same folder and
// renames it into place, so a reader sees the old or the new file whole.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat); a PID with another start time is another process.
// A zombie counts as gone.
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	return n, err == nil
}

// alive says whether pid still is the process that started at start.
func alive(pid int, start uint64) bool {
	s, ok := procStart(pid)
	return ok && s == start
}

// tail is the last n lines of a file.
func tail(path string, n int) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
