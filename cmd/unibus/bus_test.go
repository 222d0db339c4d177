package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

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
	return nil
}
