package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/unibus/unibus/internal/scripttest"
)

// TestMain lets the test binary act as the unibus command inside scripts,
// so testscript runs the real command tree through run().
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"unibus": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/*.txtar: each is a command session with its
// expected output, exit status and files.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup:               setupPath,
		Cmds:                commands(),
	})
}

func commands() map[string]func(*testscript.TestScript, bool, []string) {
	cmds := scripttest.Commands()
	cmds["exitcode"] = cmdExitCode
	cmds["snapshot"] = cmdSnapshot
	cmds["waitfiles"] = cmdWaitFiles
	return cmds
}

// cmdWaitFiles DIR N: waits until DIR holds at least N regular files
// (a killed write's temporary files not counted), polling every
// millisecond: the crash script kills apply once it has written that many.
func cmdWaitFiles(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: waitfiles DIR N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	root := ts.MkAbs(args[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && !strings.Contains(d.Name(), ".tmp") {
				n++
			}
			return nil
		})
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfiles: %d files under %s after 30s, want %d", n, args[0], want)
		}
		time.Sleep(time.Millisecond)
	}
}

// cmdExitCode N PROG ARGS...: runs PROG and asserts it exits with N (exec
// only tells zero from non-zero; -detailed-exitcode needs the number).
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		got = exit.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// cmdSnapshot FILE DIR...: writes every entry under the DIRs (path, type,
// mode, size, modification time, SHA-256) to FILE, so two snapshots
// compare with cmp: "changes nothing" means identical snapshots.
func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || neg {
		ts.Fatalf("usage: snapshot FILE DIR...")
	}
	var b strings.Builder
	for _, dir := range args[1:] {
		root := ts.MkAbs(dir)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				fmt.Fprintf(&b, "%s: absent\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum := ""
			if fi.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum = fmt.Sprintf("%x", sha256.Sum256(data))
			}
			rel, _ := filepath.Rel(ts.MkAbs("."), p)
			fmt.Fprintf(&b, "%s %s %d %d %s\n", filepath.ToSlash(rel), fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
			return nil
		})
		ts.Check(err)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644))
}
