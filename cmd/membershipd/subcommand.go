package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/unibus/unibus/internal/cli"
)

// newSubcommand is the flag set of a membershipd subcommand: silent while
// parsing (errors go out in one line through cli.UI), and for --help the
// synopsis, then the flags.
func newSubcommand(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("membershipd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nflags:\n", synopsis)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
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
	return ui.Fail(cli.WithHint(cli.Usagef("%v", err), "run %s --help", fs.Name())), true
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
