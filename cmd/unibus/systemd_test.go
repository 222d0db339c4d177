package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/unibus/unibus/internal/systemdtest"
	"github.com/unibus/unibus/internal/testbin"
)

// TestSystemdScripts runs testdata/systemd/*.txtar against a real systemd
// user manager (internal/systemdtest) that loads the units of three node
// roots, $ROOTS/n1..n3, through XDG_CONFIG_DIRS, as a user manager whose
// environment.d names them would. $BIN is membershipd, copied where
// PrivateTmp= does not hide it.
func TestSystemdScripts(t *testing.T) {
	systemdtest.Need(t)
	dir := systemdtest.Dir(t)
	roots := filepath.Join(dir, "roots")
	var configDirs []string
	for _, n := range []string{"n1", "n2", "n3"} {
		configDirs = append(configDirs, filepath.Join(roots, n, ".config"))
	}
	bin, err := testbin.MembershipdIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := systemdtest.Start(t, systemdtest.Options{ConfigDirs: configDirs})
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/systemd",
		RequireExplicitExec: true,
		Cmds:                systemdCommands(h),
		Setup: func(env *testscript.Env) error {
			if err := setupPath(env); err != nil {
				return err
			}
			env.Setenv("ROOTS", roots)
			env.Setenv("BIN", bin)
			for _, kv := range h.Env() {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv(k, v)
			}
			return nil
		},
	})
}

// systemdCommands adds "inmanager PROG ARGS...": PROG run in the
// manager's mount namespace (systemctl --user, systemd-analyze --user
// security), its output as the script's stdout and stderr.
func systemdCommands(h *systemdtest.Manager) map[string]func(*testscript.TestScript, bool, []string) {
	cmds := commands()
	cmds["inmanager"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) < 1 {
			ts.Fatalf("usage: inmanager PROG [ARGS...]")
		}
		var out, errb strings.Builder
		c := h.Command(context.Background(), args[0], args[1:]...)
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		ts.Stdout().Write([]byte(out.String()))
		ts.Stderr().Write([]byte(errb.String()))
		if err != nil && !neg {
			ts.Fatalf("inmanager %s: %v", strings.Join(args, " "), err)
		}
		if err == nil && neg {
			ts.Fatalf("inmanager %s: unexpected success", strings.Join(args, " "))
		}
	}
	return cmds
}
