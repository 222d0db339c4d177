package main

import (
	"os"
	"testing"

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
		Cmds:                scripttest.Commands(),
	})
}
