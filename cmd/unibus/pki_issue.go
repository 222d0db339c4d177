package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/pki"
)

// issueFlags are the flags every `pki issue` subcommand shares.
type issueFlags struct {
	dir, keyType string
	validity     dayDuration
	identities   []string
	force        bool
}

func (f *issueFlags) register(cmd *cobra.Command) {
	f.validity = days(pki.DefaultLeafValidity)
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "PKI folder (made by unibus pki init)")
	fl.StringVar(&f.keyType, "key-type", string(pki.DefaultKeyType), "key type: p256 or ed25519")
	fl.Var(&f.validity, "validity", "certificate lifetime (e.g. 365d)")
	fl.StringArrayVar(&f.identities, "age-identity", nil, "age identity file to open age-encrypted CA keys (repeatable)")
	fl.BoolVar(&f.force, "force", false, "replace existing keys and certificates")
}

func (f *issueFlags) prepare() (pki.CAs, pki.KeyType, error) {
	if f.dir == "" {
		return pki.CAs{}, "", cli.Usagef("--dir is required")
	}
	kt, err := pki.ParseKeyType(f.keyType)
	if err != nil {
		return pki.CAs{}, "", cli.Usagef("--key-type: %v", err)
	}
	cas, err := loadCAs(f.dir, f.identities)
	return cas, kt, err
}

func newPKIIssueCmd(ui cli.UI) *cobra.Command {
	cmd := &cobra.Command{Use: "issue", Short: "Issue node or client certificates"}
	cmd.AddCommand(newPKIIssueNodeCmd(ui), newPKIIssueClientCmd(ui))
	return cmd
}

func newPKIIssueNodeCmd(ui cli.UI) *cobra.Command {
	var (
		f       issueFlags
		name    string
		dns, ip []string
	)
	cmd := &cobra.Command{
		Use:   "node --dir DIR --name N [--dns a,b] [--ip x,y]",
		Short: "Issue a node's route certificate and client-facing server certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return cli.Usagef("--name is required")
			}
			var ips []net.IP
			for _, s := range ip {
				parsed := net.ParseIP(s)
				if parsed == nil {
					return cli.Usagef("--ip %q is not an IP address", s)
				}
				ips = append(ips, parsed)
			}
			node := pki.Node{Name: name, DNS: dns, IPs: ips, Validity: time.Duration(f.validity)}
			// Validate before the CA keys are opened: a typo should not
			// cost an age passphrase prompt.
			for _, l := range node.Leaves() {
				if err := l.Validate(); err != nil {
					return cli.Usagef("%v", err)
				}
			}
			cas, kt, err := f.prepare()
			if err != nil {
				return err
			}
			node.KeyType = kt
			issued, err := pki.Dir(f.dir).IssueNode(cas, node, pki.IssueOptions{Force: f.force})
			if err := keyExistsHint(err); err != nil {
				return err
			}
			if len(dns) == 0 || len(ip) == 0 {
				ui.Warnf("node %s has only %s SANs; nats-server resolves route host names and then verifies the IP, so give both --dns and --ip", name, map[bool]string{true: "IP", false: "DNS"}[len(dns) == 0])
			}
			printIssued(cmd, f.dir, issued...)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "node name (nodes/<name>/)")
	cmd.Flags().StringSliceVar(&dns, "dns", nil, "DNS names of the node")
	cmd.Flags().StringSliceVar(&ip, "ip", nil, "IP addresses of the node")
	return cmd
}

func newPKIIssueClientCmd(ui cli.UI) *cobra.Command {
	var (
		f      issueFlags
		handle string
	)
	cmd := &cobra.Command{
		Use:   "client --dir DIR --handle H",
		Short: "Issue a client certificate (CN = handle) signed by the client CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if handle == "" {
				return cli.Usagef("--handle is required")
			}
			leaf := pki.Leaf{Kind: pki.KindClient, Name: handle, Validity: time.Duration(f.validity)}
			if err := leaf.Validate(); err != nil {
				return cli.Usagef("%v", err)
			}
			cas, kt, err := f.prepare()
			if err != nil {
				return err
			}
			leaf.KeyType = kt
			issued, err := pki.Dir(f.dir).IssueClient(cas.Client, leaf, pki.IssueOptions{Force: f.force})
			if err := keyExistsHint(err); err != nil {
				return err
			}
			printIssued(cmd, f.dir, issued)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&handle, "handle", "", "client handle (clients/<handle>.crt)")
	return cmd
}

func keyExistsHint(err error) error {
	if errors.Is(err, pki.ErrKeyExists) {
		return cli.WithHint(err, "pass --force to reissue it with a new key")
	}
	return err
}

func printIssued(cmd *cobra.Command, dir string, issued ...*pki.Issued) {
	for _, is := range issued {
		crt, key := pki.Dir(dir).LeafFiles(is.Leaf)
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, until %s)\nwrote %s\n", crt, is.Leaf.Kind, is.Cert.NotAfter.UTC().Format(time.DateOnly), key)
	}
}
