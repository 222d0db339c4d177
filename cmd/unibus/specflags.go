package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/unibus/unibus/internal/cli"
)

// Spec commands take Terraform's single-dash flags (-var k=v, -out FILE)
// as DESIGN.md writes them. pflag reads "-var" as the shorthands v, a, r,
// so these commands parse their own flags after rewriting the single-dash
// long forms.

// varFlag collects -var name=value.
type varFlag map[string]string

func (v varFlag) String() string { return "" }
func (v varFlag) Type() string   { return "name=value" }
func (v varFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("-var %q: want name=value", s)
	}
	v[name] = value
	return nil
}

// parseSpecFlags parses a spec command's arguments into its flags (the
// command sets DisableFlagParsing) and returns the positional arguments. For
// -h it prints the help and returns an exit-0 error.
func parseSpecFlags(cmd *cobra.Command, args []string) ([]string, error) {
	fs := cmd.Flags()
	long := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
	norm := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			norm = append(norm, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(a) > 2 {
			name, _, _ := strings.Cut(a[1:], "=")
			if long[name] {
				a = "-" + a
			}
		}
		norm = append(norm, a)
	}
	fs.SetOutput(io.Discard)
	err := fs.Parse(norm)
	if help, _ := fs.GetBool("help"); help || errors.Is(err, pflag.ErrHelp) {
		_ = cmd.Help()
		return nil, &exitCodeError{code: 0}
	}
	if err != nil {
		return nil, cli.WithHint(cli.Usagef("%v", err), "run 'unibus %s --help' for the flags", cmd.Name())
	}
	return fs.Args(), nil
}
