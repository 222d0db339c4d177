// Command unibus is the operator's tool for a unibus cluster: certificates
// (unibus pki), and later the plan/apply cycle over an HCL cluster spec.
//
// The main package only parses the command line and prints; the work is done
// by the packages it calls.
package main

import (
	"errors"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one unibus command line and returns its exit code. It is the
// function testscript registers, so tests exercise the real command tree.
func run(args []string, stdout, stderr io.Writer) int {
	// Usage errors exit 1, as Terraform's do: 2 means "changes" under
	// plan -detailed-exitcode and nothing else.
	ui := cli.UI{Prog: "unibus", W: stderr, UsageExit: 1}
	root := newRootCmd(ui)
	if err := unknownCommand(root, args); err != nil {
		return ui.Fail(err)
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var exit *exitCodeError
	if errors.As(err, &exit) {
		return exit.code
	}
	return ui.Fail(err)
}

// unknownCommand turns cobra's multi-line "unknown command" message into
// one error line and a hint: the closest command, or where the list is.
func unknownCommand(root *cobra.Command, args []string) error {
	cmd, rest, err := root.Find(args)
	// A group such as "unibus pki" takes no arguments of its own: a word
	// after it is a subcommand that does not exist (cobra would print the
	// group's help and succeed).
	group := cmd.HasSubCommands() && !cmd.Runnable()
	if err == nil && !group || len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
		return nil
	}
	name, what := cmd.CommandPath(), "unknown command"
	if cmd != root {
		what = "unknown " + cmd.Name() + " command"
	}
	e := cli.Usagef("%s %q", what, rest[0])
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra sets it on the root only
	}
	if sugg := cmd.SuggestionsFor(rest[0]); len(sugg) > 0 {
		return cli.WithHint(e, "did you mean %s %s?", name, sugg[0])
	}
	return cli.WithHint(e, "run %s --help for the commands", name)
}

// exitCodeError ends a command with a given exit code after the command has
// already printed what it had to say (unibus pki check lists each problem).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return "exit status" }

func newRootCmd(ui cli.UI) *cobra.Command {
	root := &cobra.Command{
		Use:           "unibus",
		Short:         "Provision and operate a hardened NATS message bus on a few Linux hosts",
		SilenceUsage:  true, // a failed command prints one error line, not its help
		SilenceErrors: true, // cli.UI prints errors
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return cli.Usagef("%v", err)
	})
	root.AddCommand(newPKICmd(ui), newKeygenCmd(ui), newMemberCmd(ui), newTrustCmd(ui), newRoomCmd(ui), newSendCmd(ui), newListenCmd(ui))
	root.AddCommand(newInitCmd(ui), newRenderCmd(ui), newPlanCmd(ui), newShowCmd(ui), newApplyCmd(ui), newDownCmd(ui))
	root.AddCommand(newClusterCmd(ui))
	root.AddCommand(newExecSuperviseCmd(), newSSHMuxCmd())
	root.AddCommand(newStatusCmd(ui))
	return root
}
