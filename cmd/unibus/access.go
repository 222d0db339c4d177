package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/internal/sshnode"
	"github.com/unibus/unibus/provision"
)

// nodeAccess reaches the spec's nodes for one run: a node on this machine
// through its root folder, a node with target { ssh } over one SSH
// connection per target, shared by every node and step of the run.
//
// SSH settings come from the environment, as ssh's own do:
// UNIBUS_SSH_KEY (a key file; default the agent, then ~/.ssh/id_*),
// UNIBUS_SSH_KNOWN_HOSTS (default ~/.ssh/known_hosts), and
// UNIBUS_SSH_ACCEPT_NEW=1 to accept and record a host's key on first use
// (a changed key is refused all the same), and UNIBUS_SSH_PERSIST=60s to
// keep each connection open that long after a run for the next runs
// (ssh's ControlPersist; a background `unibus ssh-mux` per target, on a
// socket in $XDG_RUNTIME_DIR/unibus/ssh or /tmp/unibus-<uid>/ssh; unset
// or 0: every run dials).
type nodeAccess struct {
	pool, sudo *sshnode.Pool // sudo: for nodes with target { sudo = true }

	mu         sync.Mutex
	prefetched map[string]*prefetchedNode // by node name
}

// access is the run's nodeAccess: one per process, as a run is one
// command; its connections end with the process.
var access = sync.OnceValue(newNodeAccess)

func newNodeAccess() *nodeAccess {
	o := sshnode.Options{
		KeyFile:          os.Getenv("UNIBUS_SSH_KEY"),
		KnownHosts:       os.Getenv("UNIBUS_SSH_KNOWN_HOSTS"),
		AcceptNewHostKey: os.Getenv("UNIBUS_SSH_ACCEPT_NEW") == "1",
	}
	so := o
	so.Sudo = true
	a := &nodeAccess{pool: &sshnode.Pool{Options: o}, sudo: &sshnode.Pool{Options: so}}
	ui := cli.UI{Prog: "unibus", W: os.Stderr}
	persist, err := sshPersist(os.Getenv("UNIBUS_SSH_PERSIST"))
	if err != nil {
		ui.Warnf("%v", err)
	}
	if persist > 0 {
		exe, err := os.Executable()
		if err != nil {
			ui.Warnf("UNIBUS_SSH_PERSIST: cannot find the unibus program to keep connections (%v); every run dials", err)
			return a
		}
		var once sync.Once
		warn := func(msg string) { once.Do(func() { ui.Warnf("%s", msg) }) }
		for _, p := range []*sshnode.Pool{a.pool, a.sudo} {
			p.Persist, p.MuxCommand, p.Warn = persist, []string{exe, "ssh-mux"}, warn
		}
	}
	return a
}

// sshPersist reads UNIBUS_SSH_PERSIST: a duration (60s, 5m) or seconds,
// as ssh's ControlPersist; empty or 0 is off.
func sshPersist(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("UNIBUS_SSH_PERSIST=%q is not a duration (60s, 5m, or seconds): every run dials", v)
	}
	return d, nil
}

// transport reads node n (plan, status).
func (a *nodeAccess) transport(n *provision.Node) (provision.Transport, error) {
	if n.Target.SSH == "" {
		return provision.DefaultTransport(n)
	}
	return a.remote(n)
}

// writer changes node n (apply).
func (a *nodeAccess) writer(n *provision.Node) (provision.Writer, error) {
	if n.Target.SSH == "" {
		return provision.DefaultWriter(n)
	}
	return a.remote(n)
}

func (a *nodeAccess) remote(n *provision.Node) (*sshnode.Transport, error) {
	c, err := a.client(n)
	if err != nil {
		return nil, err
	}
	t, err := c.Transport(n.Target.Root)
	if err != nil {
		return nil, err
	}
	// The node makes its own age identity with the membershipd it runs,
	// so the secret is born there and never crosses the wire.
	return t.WithKeygen(n.Target.Binary, "age-keygen"), nil
}

// client is the SSH connection of a remote node.
func (a *nodeAccess) client(n *provision.Node) (*sshnode.Client, error) {
	p := a.pool
	if n.Target.Sudo {
		p = a.sudo
	}
	c, err := p.Client(context.Background(), n.Name, n.Target.SSH)
	if err != nil {
		return nil, err
	}
	return c.For(n.Name), nil
}

// preconnect dials every remote node's target in the background, so the
// SSH handshakes overlap the run's own work (the operator's state, the
// rendering); a node's first use waits for the dial under way, and gets
// its error.
func (a *nodeAccess) preconnect(s *provision.Spec) {
	for i := range s.Nodes {
		if n := &s.Nodes[i]; n.Target.SSH != "" {
			go a.client(n)
		}
	}
}
