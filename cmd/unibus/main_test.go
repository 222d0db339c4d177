package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
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
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"mode":     cmdMode,
			"freeport": cmdFreePort,
			"capture":  cmdCapture,
			"waithttp": cmdWaitHTTP,
			"waitsub":  cmdWaitSub,
		},
	})
}

// cmdMode asserts a file's permission bits: "mode 0600 FILE...". Key
// permissions are part of what unibus promises, and testscript has no
// built-in way to see them.
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("mode %q: %v", args[0], err)
	}
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		got := uint64(fi.Mode().Perm())
		if (got == want) == neg {
			ts.Fatalf("%s has mode %s, want %s%04o", f, fmt.Sprintf("%04o", got), map[bool]string{true: "not ", false: ""}[neg], want)
		}
	}
}
