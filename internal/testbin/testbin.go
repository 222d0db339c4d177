// Package testbin builds the real programs for end-to-end tests, once per
// test process, the way they ship: CGO_ENABLED=0 and without the race
// detector, whatever flags the test binary itself was built with. Only
// tests import it.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var dir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "unibus-test-bin-") })

var membershipd = sync.OnceValues(func() (string, error) { return build("membershipd") })

// Membershipd is the path of a membershipd built from this module's
// source; the first call builds it (seconds with a warm build cache).
func Membershipd() (string, error) { return membershipd() }

var unibus = sync.OnceValues(func() (string, error) { return build("unibus") })

// Unibus is the path of a unibus built from this module's source.
func Unibus() (string, error) { return unibus() }

// Remove deletes the built binaries; call it from TestMain after m.Run.
func Remove() {
	if d, err := dir(); err == nil {
		os.RemoveAll(d)
	}
}

func build(name string) (string, error) {
	d, err := dir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(d, name)
	// The import path, not a relative one: tests of any package build it.
	cmd := exec.Command("go", "build", "-o", bin, "github.com/unibus/unibus/cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// MembershipdIn copies the built membershipd to dir/bin/membershipd and
// returns that path: for a unit with PrivateTmp=, which cannot see the
// build under /tmp.
func MembershipdIn(dir string) (string, error) {
	built, err := Membershipd()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(built)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", "membershipd")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	return bin, os.WriteFile(bin, data, 0o755)
}
