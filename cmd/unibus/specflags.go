package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

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

// addVarFlags adds -var and -var-file, which fill vars in the order the
// command line gives them, so a later one wins as in Terraform.
func addVarFlags(cmd *cobra.Command, vars varFlag) {
	cmd.Flags().Var(vars, "var", "set a spec variable: -var name=value (repeatable)")
	cmd.Flags().Var(varFileFlag{vars}, "var-file", "set spec variables from an HCL file of name = value lines (repeatable)")
}

// varFileFlag reads -var-file FILE: name = value lines (HCL), each value
// a string, a number or a bool.
type varFileFlag struct{ vars varFlag }

func (v varFileFlag) String() string { return "" }
func (v varFileFlag) Type() string   { return "FILE" }
func (v varFileFlag) Set(file string) error {
	f, diags := hclparse.NewParser().ParseHCLFile(file)
	if diags.HasErrors() {
		return fmt.Errorf("-var-file %s: %s", file, diags.Error())
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return fmt.Errorf("-var-file %s: %s", file, diags.Error())
	}
	for name, a := range attrs {
		val, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return fmt.Errorf("-var-file %s: %s", file, diags.Error())
		}
		s, err := convert.Convert(val, cty.String)
		if err != nil || s.IsNull() || !s.IsKnown() {
			return fmt.Errorf("-var-file %s: %s at line %d must be a string, a number or a bool", file, name, a.Range.Start.Line)
		}
		v.vars[name] = s.AsString()
	}
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
