package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/internal/ids"
)

// busFlags are shared by the verbs that talk to a running membershipd:
// member, room, send, listen. Each has an environment default so a shell
// session sets them once.
type busFlags struct {
	identity, server, natsURL string
	serverCA                  string
	allowPlainHTTP            bool
	natsCA, natsCert, natsKey string
}

// register adds the control-plane flags to cmd, and the NATS ones when the
// command joins the bus (send, listen), so help shows only what applies.
func (f *busFlags) register(cmd *cobra.Command, bus bool) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.identity, "identity", envOr("UNIBUS_IDENTITY", defaultIdentityPath()), "identity `file` from unibus keygen ($UNIBUS_IDENTITY)")
	fl.StringVar(&f.server, "server", envOr("UNIBUS_SERVER", "http://127.0.0.1:8470"), "membershipd control plane `URL` ($UNIBUS_SERVER): https:// for a node with a certificate")
	fl.StringVar(&f.serverCA, "server-ca", os.Getenv("UNIBUS_SERVER_CA"), "client CA `file` that signs the nodes' certificates: the only CA an https:// server is verified against ($UNIBUS_SERVER_CA; default: the system roots)")
	fl.BoolVar(&f.allowPlainHTTP, "allow-plain-http", false, "talk plain http:// to a server that is not on loopback (answers can be read and forged on the way)")
	if !bus {
		return
	}
	fl.StringVar(&f.natsURL, "nats", envOr("UNIBUS_NATS", "nats://127.0.0.1:4250"), "NATS `URL` of the bus ($UNIBUS_NATS)")
	fl.StringVar(&f.natsCA, "nats-ca", os.Getenv("UNIBUS_NATS_CA"), "client CA `file` the NATS server certificate chains to ($UNIBUS_NATS_CA)")
	fl.StringVar(&f.natsCert, "nats-cert", os.Getenv("UNIBUS_NATS_CERT"), "client certificate `file` for NATS, when the bus asks for one")
	fl.StringVar(&f.natsKey, "nats-key", os.Getenv("UNIBUS_NATS_KEY"), "client key `file` for NATS")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func defaultIdentityPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "unibus-identity"
	}
	return filepath.Join(dir, "unibus", "identity")
}

// client loads the identity and returns a control-plane client.
func (f *busFlags) client() (*client.Client, error) {
	id, err := loadIdentity(f.identity)
	if err != nil {
		return nil, err
	}
	opts, err := f.serverOptions()
	if err != nil {
		return nil, err
	}
	return client.New(f.server, id, opts...), nil
}

// roomClient loads the identity and resolves a ROOM argument.
func (f *busFlags) roomClient(ctx context.Context, arg string) (*client.Client, client.Room, error) {
	c, err := f.client()
	if err != nil {
		return nil, client.Room{}, err
	}
	room, err := resolveRoom(ctx, c, arg)
	return c, room, err
}

// connect joins the bus as the identity's member.
func (f *busFlags) connect(id *client.Identity) (*nats.Conn, error) {
	opts := id.NATSOptions()
	if f.natsCA != "" {
		opts = append(opts, nats.RootCAs(f.natsCA))
	}
	if f.natsCert != "" || f.natsKey != "" {
		opts = append(opts, nats.ClientCert(f.natsCert, f.natsKey))
	}
	nc, err := nats.Connect(f.natsURL, opts...)
	if err != nil {
		return nil, busHint(fmt.Errorf("connect to the bus at %s: %w", f.natsURL, err), f.natsCA != "", f.natsCert != "")
	}
	return nc, nil
}

// busHint says what to do about the usual ways a connection to a TLS bus
// fails; caGiven and certGiven say whether --nats-ca and --nats-cert were.
func busHint(err error, caGiven, certGiven bool) error {
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.Is(err, nats.ErrSecureConnRequired):
		return cli.WithHint(err, "the bus serves TLS only: give --nats-ca with the client CA (client-ca.crt), or a tls:// URL")
	case errors.Is(err, nats.ErrSecureConnWanted):
		return cli.WithHint(err, "the bus does not serve TLS: drop --nats-ca, --nats-cert and --nats-key, or use nats://")
	case (errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority")) && !caGiven:
		return cli.WithHint(err, "the bus serves TLS with a certificate of its cluster's client CA: give --nats-ca client-ca.crt")
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		return cli.WithHint(err, "the bus's certificate is not signed by the CA you gave: --nats-ca must be the client CA (client-ca.crt)")
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") ||
		// Under TLS 1.3 the server's refusal of a missing client
		// certificate often arrives as the connection closing.
		!certGiven && strings.Contains(msg, "closed by remote after TLS handshake"):
		return cli.WithHint(err, "the bus asks for a client certificate: give --nats-cert and --nats-key (unibus pki issue client)")
	case errors.Is(err, nats.ErrAuthorization):
		return cli.WithHint(err, "the bus does not know this identity: an admin adds it with unibus member add")
	}
	return err
}

// resolveRoom accepts a room id or the name of one of the caller's rooms.
func resolveRoom(ctx context.Context, c *client.Client, arg string) (client.Room, error) {
	rooms, err := c.Rooms(ctx)
	if err != nil {
		return client.Room{}, apiErr(err)
	}
	var byName []client.Room
	for _, r := range rooms {
		if r.ID == arg {
			return r, nil
		}
		if r.Name == arg {
			byName = append(byName, r)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		if ids.ValidRoomID(arg) == nil {
			return client.Room{}, fmt.Errorf("room %s: not one of your rooms", arg)
		}
		return client.Room{}, cli.WithHint(fmt.Errorf("room %q: none of your rooms has this name or id", arg), "unibus room list shows your rooms")
	}
	var idList []string
	for _, r := range byName {
		idList = append(idList, r.ID)
	}
	return client.Room{}, cli.WithHint(fmt.Errorf("room %q: %d of your rooms have this name", arg, len(byName)),
		"name it by id: %s", strings.Join(idList, ", "))
}

// apiErr turns a control-plane refusal into a one-line error with a hint
// where the fix is known.
func apiErr(err error) error {
	var certErr *client.ServerCertError
	if errors.As(err, &certErr) {
		if certErr.CAFile == "" {
			return cli.WithHint(err, "a unibus node's certificate is signed by its cluster's client CA: pass --server-ca client-ca.crt (or set UNIBUS_SERVER_CA)")
		}
		return cli.WithHint(err, "--server-ca must be the client CA of the cluster this server belongs to (client-ca.crt in its PKI folder)")
	}
	var e *client.APIError
	if !errors.As(err, &e) {
		var urlErr interface{ Timeout() bool }
		if errors.As(err, &urlErr) || strings.Contains(err.Error(), "connection refused") {
			return cli.WithHint(err, "is membershipd running? set --server or UNIBUS_SERVER")
		}
		return err
	}
	switch e.Code {
	case "http":
		if strings.Contains(e.Message, "HTTP request to an HTTPS server") {
			return cli.WithHint(err, "this node serves HTTPS: use an https:// --server with --server-ca (the cluster's client-ca.crt)")
		}
	case "unknown_handle":
		return cli.WithHint(err, "your handle is not a member here: an admin adds you with unibus member add")
	case "stale_timestamp":
		return cli.WithHint(err, "this machine's clock is more than 60s off the server's")
	}
	return err
}
