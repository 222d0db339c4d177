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

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one unibus command line and returns its exit code. It is the
// function testscript registers, so tests exercise the real command tree.
func run(args []string, stdout, stderr io.Writer) int {
	ui := cli.UI{Prog: "unibus", W: stderr}
	root := newRootCmd(ui)
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
	root.AddCommand(newInitCmd(ui), newRenderCmd(ui))
	root.AddCommand(newExecSuperviseCmd())
	return root
}
