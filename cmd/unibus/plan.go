package main

import (
	"encoding/json"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/provision"
)

func newPlanCmd(ui cli.UI) *cobra.Command {
	var (
		out              string
		jsonOut, details bool
		vars             = varFlag{}
	)
	cmd := &cobra.Command{
		Use:   "plan [-out FILE] [-json] [-detailed-exitcode] [-var name=value]... [-var-file FILE]... [SPEC]",
		Short: "Show what apply would change on every node, and why; change nothing",
		Long: `Plan reads the cluster spec (SPEC: a .hcl file or a folder of them; default
the current folder), observes the operator state beside it and every node
(files by SHA-256 and mode, certificates by expiry, names and issuer, the
node's age identity), and prints per node what apply would do: + add,
~ change, - remove, and restarts, each with its reason. Secrets show as
(hidden); what only apply can produce (a certificate to issue, a password
to seal) as (known after apply). Plan writes nothing anywhere.

-out FILE saves the plan (0600; secrets only as keyed fingerprints), bound
to the spec and to what was observed: apply FILE refuses it if either
changed. -json prints the plan as JSON (format_version 1.0).

Exit status: 0 success, 1 error; with -detailed-exitcode, 0 no changes,
1 error, 2 changes.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, specPath, err := specFromArgs(ui, cmd, args, vars)
			if err != nil {
				return err
			}
			// Plan only reads, and takes no lock: what it reads of the
			// nodes can start now (apply reads them under its lock).
			access().prefetch(spec)
			op, _, err := loadOperator(ui, false)
			if err != nil {
				return err
			}
			if _, err := withOperator(spec, op); err != nil {
				return err
			}
			abs, err := filepath.Abs(specPath)
			if err != nil {
				return err
			}
			p, err := provision.MakePlan(cmd.Context(), spec, provision.PlanOptions{SpecPath: abs, Vars: vars,
				Observe: provision.ObserveOptions{Service: observeService(ui), Transport: observing(ui)}})
			if err != nil {
				return err
			}
			if out != "" {
				if err := provision.WritePlanFile(out, p.Doc); err != nil {
					return err
				}
			}
			if err := printPlan(cmd.OutOrStdout(), p.Doc, jsonOut); err != nil {
				return err
			}
			if out != "" && !jsonOut {
				ui.Printf("saved the plan to %s; unibus apply %s carries out exactly this plan", out, out)
			}
			if details && p.Doc.Changed() {
				return &exitCodeError{code: 2}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "save the plan to FILE, for unibus apply FILE and unibus show FILE")
	f.BoolVar(&jsonOut, "json", false, "print the plan as JSON")
	f.BoolVar(&details, "detailed-exitcode", false, "exit 0 with no changes, 2 with changes, 1 on error")
	addVarFlags(cmd, vars)
	return cmd
}

func printPlan(w io.Writer, doc *provision.PlanDoc, asJSON bool) error {
	if !asJSON {
		return doc.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "expires in 12 d < renew window 30 d" stays readable
	return enc.Encode(doc)
}
