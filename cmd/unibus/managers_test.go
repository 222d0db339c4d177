package main

import (
	"context"
	"strings"
	"testing"

	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

// A systemd older than the units need is refused at plan time, in one
// line, before the manager is asked anything else.
func TestCheckSystemdVersion(t *testing.T) {
	n := &provision.Node{Name: "n1", Target: provision.Target{Scope: units.User, Root: "/home/u", Manager: provision.Systemd}}
	for _, v := range []string{"247.3-7+deb11u4", "239"} {
		err := checkSystemd(context.Background(), units.NewSystemdManager(units.User), n, v)
		if err == nil || !strings.Contains(err.Error(), "systemd "+v+" is too old") || !strings.Contains(err.Error(), "248") {
			t.Errorf("systemd %s: %v, want a refusal naming 248", v, err)
		}
	}
	if _, err := units.MajorVersion("not a version"); err == nil {
		t.Error("MajorVersion of garbage: no error")
	}
}
