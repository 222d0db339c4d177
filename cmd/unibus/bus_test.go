package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// membershipdBin builds the real membershipd once per test process, for
// scripts that run it in the background.
var membershipdBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "unibus-test-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "membershipd")
	out, err := exec.Command("go", "build", "-o", bin, "../membershipd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build membershipd: %v\n%s", err, out)
	}
	return dir, nil
})

// setupPath puts the real membershipd on the scripts' PATH.
func setupPath(env *testscript.Env) error {
	dir, err := membershipdBin()
	if err != nil {
		return err
	}
	env.Setenv("PATH", dir+string(os.PathListSeparator)+env.Getenv("PATH"))
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
