package main

import (
	"os"
	"path/filepath"

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
	return nil
}
