package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

func newPKICmd(ui cli.UI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Manage the route CA, the client CA and their certificates",
		Long: `Manage a cluster's PKI folder: the route CA (nodes to each other), the client CA
(client-facing server certificates and client certificates), and the leaves.

Layout: route-ca.crt|key, client-ca.crt|key, nodes/<name>/route.crt|key,
nodes/<name>/client.crt|key, clients/<handle>.crt|key.`,
	}
	cmd.AddCommand(newPKIInitCmd(ui), newPKIIssueCmd(ui), newPKIInspectCmd(ui), newPKICheckCmd(ui),
		newPKIRotateCmd(ui), newPKIPruneCmd(ui))
	return cmd
}

func newPKIInitCmd(ui cli.UI) *cobra.Command {
	var (
		dir, cluster, keyType     string
		validity                  = days(pki.DefaultCAValidity)
		permitDNS, permitIP       []string
		recipients, recipientFile []string
		force                     bool
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create the route CA and the client CA of a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return cli.Usagef("--dir is required")
			}
			kt, err := pki.ParseKeyType(keyType)
			if err != nil {
				return cli.Usagef("--key-type: %v", err)
			}
			var nets []*net.IPNet
			for _, s := range permitIP {
				_, n, err := net.ParseCIDR(s)
				if err != nil {
					return cli.Usagef("--permit-ip %q: want a CIDR range such as 10.0.0.0/8", s)
				}
				nets = append(nets, n)
			}
			rs, err := pki.ParseRecipientArgs(recipients, recipientFile)
			if err != nil {
				return err
			}
			d := pki.Dir(dir)
			_, err = d.InitCAs(pki.InitOptions{Cluster: cluster, KeyType: kt, Validity: time.Duration(validity),
				PermittedDNS: permitDNS, PermittedIPs: nets, Recipients: rs, Force: force})
			if errors.Is(err, pki.ErrKeyExists) {
				return cli.WithHint(err, "this folder already has CAs; pass --force to replace them (every certificate they signed stops working)")
			}
			if err != nil {
				return err
			}
			for _, k := range []pki.CAKind{pki.RouteCA, pki.ClientCA} {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nwrote %s\n", d.CACert(k), d.CAKey(k))
			}
			if len(rs) > 0 {
				ui.Printf("CA keys are age-encrypted to %d recipient(s); pass --age-identity to issue", len(rs))
			} else {
				ui.Warnf("CA keys are stored unencrypted; consider --age-recipient")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "PKI folder to create the CAs in")
	f.StringVar(&cluster, "cluster", "unibus", "cluster name, part of the CA subjects")
	f.StringVar(&keyType, "key-type", string(pki.DefaultKeyType), "CA key type: p256 or ed25519")
	f.Var(&validity, "validity", "CA lifetime (e.g. 3650d, 87600h)")
	f.StringSliceVar(&permitDNS, "permit-dns", nil, "name constraint: the CAs only vouch for these DNS domains")
	f.StringSliceVar(&permitIP, "permit-ip", nil, "name constraint: the CAs only vouch for IPs in these CIDR ranges")
	f.StringArrayVar(&recipients, "age-recipient", nil, "encrypt the CA keys to this age recipient (repeatable)")
	f.StringArrayVar(&recipientFile, "age-recipients-file", nil, "encrypt the CA keys to the recipients in this file (repeatable)")
	f.BoolVar(&force, "force", false, "replace existing CA keys")
	return cmd
}

// loadCAs reads the CAs to sign with, turning the common mistakes into
// hints.
func loadCAs(dir string, identityFiles []string) (pki.CAs, error) {
	ids, err := readIdentities(identityFiles)
	if err != nil {
		return pki.CAs{}, err
	}
	cas, err := pki.Dir(dir).LoadCAs(ids...)
	return cas, caLoadHint(err, dir)
}

// readIdentities reads age identity files, or unibus identity files (whose
// age key is the operator's, as unibus apply uses it). With none given, the
// operator's own identity is used when there is one, so the CAs apply made
// for a spec open without extra flags.
func readIdentities(files []string) ([]age.Identity, error) {
	if len(files) == 0 {
		if id, err := client.LoadIdentity(operatorIdentityPath()); err == nil {
			return []age.Identity{id.Age}, nil
		}
		return nil, nil
	}
	var out []age.Identity
	for _, f := range files {
		if id, err := client.LoadIdentity(f); err == nil {
			out = append(out, id.Age)
			continue
		}
		ids, err := pki.ReadIdentityFiles([]string{f})
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	return out, nil
}

// caLoadHint adds what to do to the usual errors of opening the CAs.
func caLoadHint(err error, dir string) error {
	switch {
	case errors.Is(err, pki.ErrNeedIdentity):
		return cli.WithHint(err, "pass --age-identity FILE with the identity of one of the operator recipients")
	case errors.As(err, new(*age.NoIdentityMatchError)):
		return cli.WithHint(err, "the --age-identity given is not one the CA keys were encrypted to")
	case errors.Is(err, pki.ErrNeedRecipients):
		return cli.WithHint(err, "pass --age-recipient or --age-recipients-file to encrypt the new CA key")
	case errors.Is(err, fs.ErrNotExist):
		return cli.WithHint(err, "run 'unibus pki init --dir %s' first", dir)
	}
	return err
}

// dayDuration is a flag value that takes days ("365d") as well as Go
// durations ("8760h"): certificate lifetimes are counted in days.
type dayDuration time.Duration

func days(d time.Duration) dayDuration { return dayDuration(d) }

func (d *dayDuration) String() string {
	if time.Duration(*d)%pki.Day == 0 {
		return strconv.Itoa(int(time.Duration(*d)/pki.Day)) + "d"
	}
	return time.Duration(*d).String()
}

func (d *dayDuration) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a positive number of days", s)
		}
		*d = dayDuration(time.Duration(v) * pki.Day)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a duration such as 30d or 720h", s)
	}
	*d = dayDuration(v)
	return nil
}

func (d *dayDuration) Type() string { return "duration" }

// atFlag is --at: check or inspect as of another date, to see what will
// have expired by then.
func atFlag(cmd *cobra.Command, at *string) {
	cmd.Flags().StringVar(at, "at", "", "evaluate validity as of this date (YYYY-MM-DD or RFC 3339) instead of now")
}

func parseAt(at string) (time.Time, error) {
	if at == "" {
		return time.Now(), nil
	}
	if t, err := time.Parse(time.DateOnly, at); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, cli.Usagef("--at %q: want YYYY-MM-DD or RFC 3339", at)
	}
	return t, nil
}
