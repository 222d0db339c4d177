package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/rollout"
)

func newStatusCmd(ui cli.UI) *cobra.Command {
	var (
		jsonOut bool
		watch   time.Duration
		timeout time.Duration
		vars    = varFlag{}
	)
	cmd := &cobra.Command{
		Use:   "status [-json] [-watch [D]] [-timeout D] [-var name=value]... [SPEC]",
		Short: "Show each node's health, posture, service, JetStream state and certificates",
		Long: `Status asks every node of the spec (SPEC: a .hcl file or a folder of them;
default the current folder) for its control plane's /readyz and /healthz,
its service manager for the unit's state, and reads the certificates the
node holds. It prints a table per node and, below it, every finding.

A node is flagged CRITICAL when it does not answer, is not ready or not
converged (a stream short of followers, the meta group short of servers),
its posture is not enforce + acl + tls (client, control plane and, in a
cluster, routes), its service is not active, or a certificate has expired;
WARNING when a certificate is inside the spec's renew window or the
nats-server monitor is open. It changes nothing and shows no secret.

Exit status, as a Nagios check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
(the spec unreadable, or a node's state could not be read).

-json prints the same as a JSON document (format_version 1.0). -watch
redraws every 2s (-watch 5s: every 5s) until interrupted.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runStatus(cmd, ui, args, vars, &jsonOut, &watch, &timeout)
			if err != nil {
				var exit *exitCodeError
				if errors.As(err, &exit) {
					return err
				}
				ui.Fail(err)
				return &exitCodeError{code: int(levelUnknown)}
			}
			if code != 0 {
				return &exitCodeError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&jsonOut, "json", false, "print the status as JSON (format_version 1.0)")
	f.DurationVar(&watch, "watch", 0, "redraw every `D` (default 2s) until interrupted")
	f.Lookup("watch").NoOptDefVal = "2s"
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for each node's answer")
	addVarFlags(cmd, vars)
	return cmd
}

func runStatus(cmd *cobra.Command, ui cli.UI, args []string, vars varFlag, jsonOut *bool, watch, timeout *time.Duration) (int, error) {
	rest, err := parseSpecFlags(cmd, args)
	if err != nil {
		return 0, err
	}
	// -watch takes an optional duration: "-watch 5s" as well as
	// "-watch=5s". A first argument that is a duration and no file is it.
	if *watch > 0 && len(rest) > 0 {
		if d, err := time.ParseDuration(rest[0]); err == nil {
			if _, statErr := os.Stat(rest[0]); statErr != nil {
				*watch, rest = d, rest[1:]
			}
		}
	}
	if *watch < 0 {
		return 0, cli.Usagef("-watch %s: want a positive interval", *watch)
	}
	specPath, err := specArg(rest)
	if err != nil {
		return 0, err
	}
	spec, err := loadSpec(ui, specPath, vars)
	if err != nil {
		return 0, err
	}
	access().preconnect(spec)
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	out := cmd.OutOrStdout()
	if *watch == 0 {
		doc := gatherStatus(ctx, spec, *timeout)
		return int(doc.Status), writeStatus(out, doc, *jsonOut)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	for {
		doc := gatherStatus(ctx, spec, *timeout)
		if ctx.Err() != nil {
			return code, nil
		}
		code = int(doc.Status)
		if !*jsonOut && isTerminal(out) {
			// Clear the screen and home the cursor, as watch(1) does; into
			// a file or a pipe the frames follow one another.
			fmt.Fprint(out, "\x1b[H\x1b[2J")
		}
		if err := writeStatus(out, doc, *jsonOut); err != nil {
			return code, err
		}
		select {
		case <-ctx.Done():
			return code, nil
		case <-time.After(*watch):
		}
	}
}

// gatherStatus observes every node (concurrently: a node that hangs costs
// its timeout once, not once per node) and classifies them.
func gatherStatus(ctx context.Context, spec *provision.Spec, timeout time.Duration) *statusDoc {
	now := time.Now()
	e := expect{Cluster: spec.IsCluster(), RenewBefore: spec.Cluster.PKI.RenewBefore, Now: now}
	obs := make([]nodeObs, len(spec.Nodes))
	certs, certErr := observeCerts(ctx, spec)
	var wg sync.WaitGroup
	for i := range spec.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := &spec.Nodes[i]
			o := &obs[i]
			o.Name = n.Name
			probeNode(ctx, spec, n, timeout, o)
			observeUnit(ctx, spec, n, o)
			o.Certs, o.CertErr = certs[n.Name], certErr
		}()
	}
	wg.Wait()
	return makeStatusDoc(spec.Cluster.Name, obs, e)
}

func probeNode(ctx context.Context, spec *provision.Spec, n *provision.Node, timeout time.Duration, o *nodeObs) {
	target, err := nodeHTTP(spec, n)
	if err != nil {
		o.ProbeErr = err.Error()
		return
	}
	expectServers := 0
	if spec.IsCluster() {
		expectServers = len(spec.Nodes)
	}
	o.Sample, o.Health, err = rollout.Probe(ctx, target, timeout, expectServers)
	if err != nil {
		o.ProbeErr = err.Error()
	}
}

func observeUnit(ctx context.Context, spec *provision.Spec, n *provision.Node, o *nodeObs) {
	m, err := managerFor(n)
	if err != nil {
		o.ServiceErr = err.Error()
		return
	}
	o.Manager = m.Name()
	if o.ManagerVersion, err = m.Version(ctx); err != nil {
		o.ServiceErr = err.Error()
		return
	}
	st, err := m.Status(ctx, spec.UnitNameFor(n))
	if err != nil {
		o.ServiceErr = err.Error()
		return
	}
	o.Service = &st
}

// observeCerts reads the certificates every node holds, as plan observes
// them, by node name.
func observeCerts(ctx context.Context, spec *provision.Spec) (map[string][]certObs, string) {
	states, err := provision.ObserveNodes(ctx, spec, provision.ObserveOptions{Transport: access().transport})
	if err != nil {
		return nil, err.Error()
	}
	out := map[string][]certObs{}
	for name, st := range states {
		for p, c := range st.Certs {
			out[name] = append(out[name], certObs{Path: p, Subject: c.Subject, NotAfter: c.NotAfter})
		}
		slices.SortFunc(out[name], func(a, b certObs) int { return strings.Compare(certName(a.Path), certName(b.Path)) })
	}
	return out, ""
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
