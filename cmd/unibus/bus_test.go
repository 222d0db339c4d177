package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/unibus/unibus/internal/testbin"
)

// setupPath puts the real membershipd, built once per test process, on the
// scripts' PATH.
func setupPath(env *testscript.Env) error {
	bin, err := testbin.Membershipd()
	if err != nil {
		return err
	}
	env.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+env.Getenv("PATH"))
	env.Defer(func() { killExecUnits(env.WorkDir) })
	return nil
}

// killExecUnits SIGKILLs every service and supervisor the exec manager
// started under dir, so a failed script leaves no node running (they are
// detached, as they must be in production).
func killExecUnits(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "status.json" || !strings.Contains(p, "unibus-exec") {
			return nil
		}
		var st struct {
			SupervisorPID int `json:"supervisor_pid"`
			MainPID       int `json:"main_pid"`
		}
		if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &st) == nil {
			for _, pid := range []int{st.SupervisorPID, st.MainPID} {
				if pid > 1 {
					syscall.Kill(-pid, syscall.SIGKILL)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		return nil
	})
}
