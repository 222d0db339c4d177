package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/internal/sshnode"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

// minSystemd is the oldest systemd the rendered units run under: they
// name credentials with %d, which systemd 248 added.
const minSystemd = 248

// systemdManagers holds one D-Bus connection per scope for the whole run.
var systemdManagers = struct {
	sync.Mutex
	m map[units.Scope]*units.SystemdManager
}{m: map[units.Scope]*units.SystemdManager{}}

// sshManagers holds one SystemctlManager per remote node and scope for
// the run, so what the manager says of itself is asked once.
var sshManagers = struct {
	sync.Mutex
	m map[sshManagerKey]*units.SystemctlManager
}{m: map[sshManagerKey]*units.SystemctlManager{}}

type sshManagerKey struct {
	node  string
	scope units.Scope
}

// sshManager is node's manager over c: one per node (c names it in
// errors), even where nodes share a host.
func sshManager(node string, c *sshnode.Client, scope units.Scope) *units.SystemctlManager {
	sshManagers.Lock()
	defer sshManagers.Unlock()
	k := sshManagerKey{node, scope}
	if sshManagers.m[k] == nil {
		sshManagers.m[k] = units.NewSystemctlManager(scope, c)
	}
	return sshManagers.m[k]
}

// managerFor is the service manager that runs a node's units.
func managerFor(n *provision.Node) (units.Manager, error) {
	if n.Target.SSH != "" {
		if n.Target.Manager != provision.Systemd {
			return nil, fmt.Errorf("manager %s over ssh is not supported: use manager = \"systemd\" on a remote node", n.Target.Manager)
		}
		c, err := access().client(n)
		if err != nil {
			return nil, err
		}
		return sshManager(n.Name, c, n.Target.Scope), nil
	}
	switch n.Target.Manager {
	case provision.Exec:
		return units.NewExecManager(n.Target.Root, n.Target.Scope), nil
	case provision.Systemd:
		systemdManagers.Lock()
		defer systemdManagers.Unlock()
		m := systemdManagers.m[n.Target.Scope]
		if m == nil {
			m = units.NewSystemdManager(n.Target.Scope)
			systemdManagers.m[n.Target.Scope] = m
		}
		return m, nil
	}
	return nil, fmt.Errorf("manager %q: want exec or systemd", n.Target.Manager)
}

// observeService is the plan's view of a node's service. Under systemd it
// also refuses, in one line, what would fail only at start: a systemd too
// old for the units, or a manager that would never load them. A manager
// that cannot be reached at all is a warning: plan still shows the files
// (as on a machine where systemd is not running yet), and apply refuses
// the node before it writes anything.
func observeService(ui cli.UI) provision.ServiceObserver {
	return func(ctx context.Context, n *provision.Node, unit string) (*provision.ServiceState, error) {
		m, err := managerFor(n)
		if err != nil {
			return nil, err
		}
		// The unit's status is asked beside the manager's version.
		type status struct {
			st  units.UnitStatus
			err error
		}
		stc := make(chan status, 1)
		go func() {
			st, err := m.Status(ctx, unit)
			stc <- status{st, err}
		}()
		return serviceState(ctx, ui, n, m, func() (string, error) { return m.Version(ctx) },
			func() (units.UnitStatus, error) { r := <-stc; return r.st, r.err })
	}
}

// serviceState is the plan's view of a node's service from what its
// manager answered: version, then the unit's status.
func serviceState(ctx context.Context, ui cli.UI, n *provision.Node, m units.Manager, version func() (string, error), status func() (units.UnitStatus, error)) (*provision.ServiceState, error) {
	v, err := version()
	if errors.As(err, new(*units.UnreachableError)) {
		ui.Warnf("node %s: %v; the plan shows no service state", n.Name, err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sd, ok := m.(unitPather); ok {
		if err := checkSystemd(ctx, sd, n, v); err != nil {
			return nil, err
		}
	}
	st, err := status()
	if err != nil {
		return nil, err
	}
	ss := &provision.ServiceState{ActiveState: st.ActiveState, SubState: st.SubState, Manager: m.Name(), ManagerVersion: v}
	if m.Name() == "systemd" && n.Target.Scope == units.User && n.Target.SSH == "" {
		// (The exec manager enforces no sandboxing at all; apply says so.)
		ss.NotEnforced = units.LocalUserManagerNotEnforced()
	}
	return ss, nil
}

// reachable refuses, before apply writes anything, a node whose service
// manager does not answer.
func reachable(ctx context.Context, n *provision.Node) error {
	m, err := managerFor(n)
	if err != nil {
		return err
	}
	_, err = m.Version(ctx)
	return err
}

// unitPather is a systemd manager, local or remote, that says where it
// loads units from.
type unitPather interface {
	UnitPath(ctx context.Context) ([]string, error)
}

func checkSystemd(ctx context.Context, m unitPather, n *provision.Node, version string) error {
	major, err := units.MajorVersion(version)
	if err != nil {
		return err
	}
	if major < minSystemd {
		return fmt.Errorf("systemd %s is too old: the units load credentials with %%d, which needs systemd %d or later", version, minSystemd)
	}
	dirs, err := m.UnitPath(ctx)
	if err != nil {
		return err
	}
	want := filepath.Join(n.Target.Root, n.Target.Scope.UnitDir())
	if !slices.ContainsFunc(dirs, func(d string) bool { return filepath.Clean(d) == want }) {
		if n.Target.Scope == units.User {
			return fmt.Errorf("the systemd user manager does not load units from %s (root %s is not its user's home): set root to the home of the user whose manager runs the node, or add %s to XDG_CONFIG_DIRS in ~/.config/environment.d and log in again",
				want, n.Target.Root, filepath.Join(n.Target.Root, ".config"))
		}
		return fmt.Errorf("systemd does not load units from %s: a system node's root must be / (got %s)", want, n.Target.Root)
	}
	return nil
}
