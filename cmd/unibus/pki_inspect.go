package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

func newPKIInspectCmd(ui cli.UI) *cobra.Command {
	var (
		dir, at string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Show certificates: subject, SANs, issuer, validity, and which CA they chain to",
		Long: `Show certificates: subject, SANs, issuer, validity, days left, and which CA they
chain to. The CAs are looked for in the file's folder and its parents, or in --dir.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			now, err := parseAt(at)
			if err != nil {
				return err
			}
			var infos []pki.CertInfo
			failed := false
			for _, file := range files {
				route, client := trustFor(dir, file)
				got, err := pki.Inspect(file, route, client, now)
				if err != nil {
					ui.Fail(err)
					failed = true
					continue
				}
				infos = append(infos, got...)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if infos == nil {
					infos = []pki.CertInfo{}
				}
				if err := enc.Encode(infos); err != nil {
					return err
				}
			} else if len(infos) > 0 {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "FILE\tSUBJECT\tSANS\tISSUER\tNOT BEFORE\tNOT AFTER\tDAYS LEFT\tCHAINS TO")
				for _, i := range infos {
					sans := strings.Join(append(append([]string{}, i.DNS...), i.IPs...), ",")
					if sans == "" {
						sans = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.File, i.Subject, sans, i.Issuer,
						i.NotBefore.Format(time.DateOnly), i.NotAfter.Format(time.DateOnly), strconv.Itoa(i.DaysLeft), i.ChainsTo)
				}
				tw.Flush()
			}
			if failed {
				return &exitCodeError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "PKI folder whose CAs to check chains against (default: found from each file's folder upwards)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	atFlag(cmd, &at)
	return cmd
}

// trustFor finds the bundles a file is judged against. A missing or corrupt
// bundle only makes the chain "unknown": inspect is for looking at broken
// folders too, and check reports the bundle itself.
func trustFor(dir, file string) (route, client pki.Bundle) {
	d := pki.Dir(dir)
	if dir == "" {
		found, ok := pki.FindDir(file)
		if !ok {
			return nil, nil
		}
		d = found
	}
	route, _ = pki.ReadBundleFile(d.CACert(pki.RouteCA))
	client, _ = pki.ReadBundleFile(d.CACert(pki.ClientCA))
	return route, client
}

func newPKICheckCmd(ui cli.UI) *cobra.Command {
	var (
		at         string
		renew      = days(pki.DefaultRenewBefore)
		caRenew    = days(pki.DefaultCARenewBefore)
		identities []string
	)
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "List every problem in a PKI folder; exit 1 if there is any",
		Long: `List every problem in a PKI folder, one line each: expired or expiring
certificates, a certificate that does not chain to the CA its role needs, a key
that is missing, does not match its certificate, or is readable by others.
Exits 1 if there is any problem.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now, err := parseAt(at)
			if err != nil {
				return err
			}
			ids, err := pki.ReadIdentityFiles(identities)
			if err != nil {
				return err
			}
			r := pki.Dir(args[0]).Check(pki.CheckOptions{Now: now, RenewBefore: time.Duration(renew),
				CARenewBefore: time.Duration(caRenew), Identities: ids})
			out := cmd.OutOrStdout()
			for _, p := range r.Problems {
				fmt.Fprintln(out, p)
			}
			if len(r.Problems) > 0 {
				ui.Fail(fmt.Errorf("%d problem(s) in %s", len(r.Problems), args[0]))
				return &exitCodeError{code: 1}
			}
			fmt.Fprintf(out, "ok: %d CA certificate(s), %d leaf certificate(s), no problem\n", r.CAs, r.Leaves)
			return nil
		},
	}
	cmd.Flags().Var(&renew, "renew-before", "a leaf expiring within this window is a problem")
	cmd.Flags().Var(&caRenew, "ca-renew-before", "a CA expiring within this window is a problem")
	cmd.Flags().StringArrayVar(&identities, "age-identity", nil, "age identity file, to match age-encrypted CA keys with their certificates")
	atFlag(cmd, &at)
	return cmd
}
