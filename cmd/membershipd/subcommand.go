package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/unibus/unibus/internal/cli"
)

// newSubcommand is the flag set of a membershipd subcommand: silent while
// parsing (errors go out in one line through cli.UI), and for --help the
// synopsis, then the flags.
func newSubcommand(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("membershipd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%s\n\nflags:\n", synopsis)
		printFlags(stdout, fs)
	}
	return fs
}

// printFlags lists fs's flags the way the README and DESIGN write them,
// with two dashes (the flag package accepts both; it prints one).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// dashes rewrites the flag package's "-name" in its errors as "--name".
func dashes(err error) error {
	msg := err.Error()
	for _, p := range []string{"defined: -", "for flag -", "needs an argument: -"} {
		msg = strings.Replace(msg, p, p[:len(p)-1]+"--", 1)
	}
	return errors.New(msg)
}

// parseSubcommand parses args into fs. When the command is done already
// (--help, or a flag it does not know) it returns the exit code and true.
func parseSubcommand(ui cli.UI, fs *flag.FlagSet, args []string) (int, bool) {
	err := parse(fs, args)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	}
	return ui.Fail(cli.WithHint(cli.Usagef("%v", dashes(err)), "run %s --help", fs.Name())), true
}

// parse is fs.Parse without the flag package's own printing, which shows
// the usage on every parse error (and once more on --help): here --help
// prints it once, and a bad flag comes back as an error, for one line.
func parse(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage()
	}
	return err
}
