package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
	"github.com/unibus/unibus/provision"
	"github.com/unibus/unibus/units"
)

func newApplyCmd(ui cli.UI) *cobra.Command {
	var (
		autoApprove bool
		force       bool
		noMove      bool
		lockTimeout time.Duration
		identities  []string
		vars        = varFlag{}
	)
	cmd := &cobra.Command{
		Use:   "apply [-auto-approve] [-force] [-lock-timeout D] [-var name=value]... [PLANFILE|SPEC]",
		Short: "Carry out a plan: operator state, every node's files, then its service",
		Long: `Apply makes the nodes what the spec says. Given a SPEC (a .hcl file or a folder
of them; default the current folder) it plans, shows the plan and asks before
it changes anything (-auto-approve skips the question). Given a PLANFILE from
unibus plan -out, it carries out exactly that plan, and refuses it if the spec,
the operator state or any node changed since.

What it does: makes each node's age identity on the node where it is missing,
carries out the operator-state changes (CAs, certificates, the cluster
password sealed to each node), writes each node's files atomically with their
final modes, then reloads the node's service manager and starts or restarts
the service where the plan says so. A plan with no changes writes nothing.

On a running cluster the change rolls: one node at a time in the rollout
order, the JetStream meta leader's node last, each node's files written only
in its turn, and after each restart the gate waits until every node is ready
and every replicated stream has all its followers current again, on
rollout { samples } consecutive samples within converge_timeout. A rollout
does not start on a cluster that is not converged (-force starts it anyway),
and it stops at the first node that fails to start or to reconverge, leaving
the nodes after it untouched. A new cluster starts whole and is gated once.

The operator identity ($UNIBUS_IDENTITY, default ~/.config/unibus/identity) is
made once if missing: it opens the operator state when the spec names no
operator_recipients, and it is the first admin of the cluster's control plane.

A lock in the spec's state_dir stops a second apply; -lock-timeout waits for it.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := parseSpecFlags(cmd, args)
			if err != nil {
				return err
			}
			arg, err := specArg(rest)
			if err != nil {
				return err
			}
			saved, specPath, err := planOrSpec(arg, vars)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return runApply(ctx, ui, cmd, applyRun{specPath: specPath, vars: vars, saved: saved,
				autoApprove: autoApprove, force: force, noMoveLeaders: noMove, lockTimeout: lockTimeout, identities: identities})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&autoApprove, "auto-approve", false, "apply without asking")
	f.BoolVar(&force, "force", false, "roll out even if the cluster is not converged, or a restart would cost a quorum")
	f.BoolVar(&noMove, "no-move-leaders", false, "restart nodes without moving their JetStream leaders off first (for comparison)")
	f.DurationVar(&lockTimeout, "lock-timeout", 0, "wait up to `D` for another apply's lock (0: refuse at once)")
	f.StringArrayVar(&identities, "age-identity", nil, "another operator age identity file, to open the operator state (repeatable)")
	addVarFlags(cmd, vars)
	return cmd
}

// planOrSpec tells a saved plan from a spec: a plan file is JSON, a spec
// is HCL or a folder. For a plan, the spec and variables are the plan's.
func planOrSpec(arg string, vars varFlag) (*provision.PlanDoc, string, error) {
	st, err := os.Stat(arg)
	if err != nil || st.IsDir() || strings.HasSuffix(arg, ".hcl") {
		return nil, arg, nil
	}
	doc, err := provision.ReadPlanFile(arg)
	if err != nil {
		return nil, "", err
	}
	if len(vars) > 0 {
		return nil, "", cli.Usagef("-var with a plan file: the plan's variables are fixed; plan again with them instead")
	}
	for k, v := range doc.Spec.Variables {
		vars[k] = v
	}
	return doc, doc.Spec.Path, nil
}

type applyRun struct {
	specPath      string
	vars          varFlag
	saved         *provision.PlanDoc
	autoApprove   bool
	force         bool
	noMoveLeaders bool
	lockTimeout   time.Duration
	identities    []string
}

func runApply(ctx context.Context, ui cli.UI, cmd *cobra.Command, r applyRun) error {
	spec, err := loadSpec(ui, r.specPath, r.vars)
	if err != nil {
		return err
	}
	access().preconnect(spec)
	op, freshOperator, err := loadOperator(ui, true)
	if err != nil {
		return err
	}
	ids, err := withOperator(spec, op)
	if err != nil {
		return err
	}
	more, err := pki.ReadIdentityFiles(r.identities)
	if err != nil {
		return err
	}
	ids = append(ids, more...)
	// Refused before anything is written: apply never leaves files on a
	// node whose service it cannot then start.
	for i := range spec.Nodes {
		if err := reachable(ctx, &spec.Nodes[i]); err != nil {
			hint := "unibus plan and unibus render work for every node; apply needs each node's service manager (manager = \"systemd\" over ssh)"
			if errors.As(err, new(*units.UnreachableError)) {
				hint = "start systemd on the node (for a user node: log in, or loginctl enable-linger), or use manager = \"exec\" where no systemd runs"
			}
			return cli.WithHint(fmt.Errorf("node %s: %w", spec.Nodes[i].Name, err), "%s", hint)
		}
	}
	lock, err := provision.AcquireLock(spec.Cluster.StateDir, "apply", r.lockTimeout)
	var locked *provision.LockedError
	if errors.As(err, &locked) {
		return cli.WithHint(err, "another apply is running; wait for it, or pass -lock-timeout 5m to wait here")
	}
	if err != nil {
		return err
	}
	defer lock.Release()

	abs, err := filepath.Abs(r.specPath)
	if err != nil {
		return err
	}
	opts := provision.PlanOptions{SpecPath: abs, Vars: r.vars,
		Observe: provision.ObserveOptions{Service: observeService(ui), Transport: observing(ui)}}
	p, err := provision.MakePlan(ctx, spec, opts)
	if err != nil {
		return err
	}
	if r.saved != nil {
		if err := p.Stale(r.saved); err != nil {
			return cli.WithHint(fmt.Errorf("the saved plan is stale: %w", err), "make a new one with unibus plan -out FILE, or apply the spec itself")
		}
	}
	w := cmd.OutOrStdout()
	// A node without its age identity yet: sealing to it is known only
	// once apply has made the identity on the node, after the question.
	missing := false
	for _, n := range p.Input.Nodes {
		if n.Recipient == "" {
			missing = true
		}
	}
	if !p.Doc.Changed() && !missing && !freshOperator {
		fmt.Fprintln(w, "No changes. Every node matches the spec.")
		return nil
	}
	if r.saved == nil {
		if err := p.Doc.WriteText(w); err != nil {
			return err
		}
		if !r.autoApprove {
			if err := confirm(cmd); err != nil {
				return err
			}
		}
	}
	if freshOperator {
		if err := saveOperator(ui, op); err != nil {
			return err
		}
	}
	created, err := provision.PrepareNodes(ctx, spec, access().writer)
	if err != nil {
		return err
	}
	if len(created) > 0 {
		ui.Printf("made the age identity of %s on the node (it never leaves it)", strings.Join(created, ", "))
		if p, err = provision.MakePlan(ctx, spec, opts); err != nil {
			return err
		}
	}
	res, err := provision.Apply(ctx, p, provision.ApplyOptions{
		Identities: ids, Writer: access().writer, Manager: managerFor, Rollout: rollouter(ui, spec, op, r.force, !r.noMoveLeaders),
		Progress: func(format string, args ...any) { ui.Printf(format, args...) },
		Warn:     func(s string) { ui.Warnf("%s", s) },
	})
	if errors.Is(err, provision.ErrNeedIdentity) {
		return cli.WithHint(err, "pass --age-identity FILE with the identity of one of operator_recipients")
	}
	if err != nil {
		return cli.WithHint(fmt.Errorf("apply stopped: %w", err), "fix the cause and run unibus apply again: it carries on from where it stopped")
	}
	fmt.Fprintf(w, "Apply complete: %d file(s) written, %d removed, %d started, %d restarted.\n", res.Written, res.Removed, res.Started, res.Restarted)
	return nil
}

// confirm asks on a terminal, as Terraform does; elsewhere apply needs
// -auto-approve, so a script never blocks on a question it cannot see.
func confirm(cmd *cobra.Command) error {
	in, ok := cmd.InOrStdin().(*os.File)
	var st os.FileInfo
	if ok {
		st, _ = in.Stat()
	}
	if st == nil || st.Mode()&os.ModeCharDevice == 0 {
		return cli.WithHint(errors.New("apply needs an answer and standard input is not a terminal"), "pass -auto-approve to apply without asking")
	}
	fmt.Fprint(cmd.OutOrStdout(), "\nDo you want to perform these actions? Only 'yes' will be accepted: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("apply cancelled: nothing was changed")
	}
	return nil
}
