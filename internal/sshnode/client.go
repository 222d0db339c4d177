package sshnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Options say how to reach a node over SSH.
type Options struct {
	// KnownHosts is the known_hosts file host keys are checked against
	// (default ~/.ssh/known_hosts).
	KnownHosts string
	// AcceptNewHostKey accepts the key of a host known_hosts does not know
	// and appends it there (ssh's StrictHostKeyChecking=accept-new). A
	// changed key is refused all the same.
	AcceptNewHostKey bool
	// KeyFile is a private key (without passphrase) to log in with. With
	// none, the SSH agent ($SSH_AUTH_SOCK) is asked, then the default
	// keys ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist.
	KeyFile string
	// Sudo runs what touches the node's files and Run's commands under
	// sudo -n (system scope as a user that is not root).
	Sudo bool
	// AgeKeygen is the age-keygen command on the node (default
	// "age-keygen" from its PATH), which makes and reads the node's age
	// identity there. See [Transport.EnsureAgeIdentity] for a node
	// without it.
	AgeKeygen string
	// Timeout bounds connecting and the SSH handshake (default 15s).
	Timeout time.Duration
}

// maxSessions bounds the sessions open at once on one connection: sshd
// refuses more than its MaxSessions (default 10) with "administratively
// prohibited".
const maxSessions = 8

// Client is one SSH connection to a node, shared by every use of it for a
// run; it is safe for concurrent use.
type Client struct {
	name     string
	target   Target
	conn     *ssh.Client
	sessions chan struct{}
	o        Options
}

// Dial connects to node name at target (user@host:port), checking its
// host key and logging in. Errors name the node and say what to do.
func Dial(ctx context.Context, name, target string, o Options) (*Client, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	if o, err = o.withDefaults(); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	hk, err := loadHostKeys(o.KnownHosts, o.AcceptNewHostKey)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	auth, closeAuth, err := authMethods(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	defer closeAuth()

	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(dctx, "tcp", t.HostPort)
	if err != nil {
		return nil, fmt.Errorf("node %s: cannot reach %s: %v: is the host up and its sshd listening there?", name, t.HostPort, unwrapOp(err))
	}
	raw = quickAck(raw)
	// The handshake honours the same bound, and ctx.
	deadline, _ := dctx.Deadline()
	raw.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              auth,
		HostKeyCallback:   hk.callback(name, t.HostPort),
		HostKeyAlgorithms: hk.algorithms(t.HostPort, raw.RemoteAddr()),
		Timeout:           o.Timeout,
	}
	cc, chans, reqs, err := ssh.NewClientConn(raw, t.HostPort, cfg)
	stop()
	if err != nil {
		raw.Close()
		return nil, handshakeErr(name, t, o, err)
	}
	raw.SetDeadline(time.Time{})
	return newClient(name, t, ssh.NewClient(cc, chans, reqs), o), nil
}

// withDefaults fills in what Options leave unset.
func (o Options) withDefaults() (Options, error) {
	if o.KnownHosts == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("no home folder for ~/.ssh/known_hosts (%v): give a known_hosts file", err)
		}
		o.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if o.AgeKeygen == "" {
		o.AgeKeygen = "age-keygen"
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	return o, nil
}

func newClient(name string, t Target, conn *ssh.Client, o Options) *Client {
	return &Client{name: name, target: t, conn: conn, sessions: make(chan struct{}, maxSessions), o: o}
}

// handshakeErr says why the handshake failed and what to do.
func handshakeErr(name string, t Target, o Options, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "node "+name+": "):
		// Our host key refusal, already explained: without x/crypto's
		// "ssh: handshake failed:" before it.
		return errors.New(msg[strings.Index(msg, "node "+name+": "):])
	case strings.Contains(msg, "unable to authenticate"):
		with := "the SSH agent's keys and the default keys in ~/.ssh"
		if o.KeyFile != "" {
			with = "key " + o.KeyFile
		}
		return fmt.Errorf("node %s: %s refused authentication with %s: add the public key to ~%s/.ssh/authorized_keys on the node, or give the key that is there", name, t, with, t.User)
	}
	return fmt.Errorf("node %s: SSH handshake with %s failed: %v", name, t.HostPort, err)
}

// unwrapOp drops net.OpError's repetition of the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// authMethods are the keys to log in with: the key file when given, else
// the agent's keys then the default key files.
func authMethods(keyFile string) ([]ssh.AuthMethod, func(), error) {
	if keyFile != "" {
		s, err := readKey(keyFile)
		if err != nil {
			return nil, nil, err
		}
		return []ssh.AuthMethod{ssh.PublicKeys(s)}, func() {}, nil
	}
	var signers []ssh.Signer
	closeAgent := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		// The agent is asked during the handshake only.
		if c, err := net.Dial("unix", sock); err == nil {
			closeAgent = func() { c.Close() }
			if ss, err := agent.NewClient(c).Signers(); err == nil {
				signers = append(signers, ss...)
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		for _, f := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if s, err := readKey(filepath.Join(home, ".ssh", f)); err == nil {
				signers = append(signers, s)
			}
		}
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, nil, errors.New("no SSH key to log in with: no agent ($SSH_AUTH_SOCK) with keys and no ~/.ssh/id_ed25519, id_ecdsa or id_rsa; start ssh-agent and ssh-add a key, or give a key file")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

func readKey(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var pp *ssh.PassphraseMissingError
	if errors.As(err, &pp) {
		return nil, fmt.Errorf("ssh key %s has a passphrase: add it to the SSH agent (ssh-add %s) and give no key file", file, file)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", file, err)
	}
	return s, nil
}

// Name is the node's name, as errors give it.
func (c *Client) Name() string { return c.name }

// For is c for node: the same connection (and its bound on sessions),
// with errors naming node. Nodes that share a host share its one
// connection, and an error must name the node it is about, not the one
// that happened to dial. Close the connection through c (or its Pool),
// not through what For returns.
func (c *Client) For(node string) *Client {
	d := *c
	d.name = node
	return &d
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }
