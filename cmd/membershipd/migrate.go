package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/membershipd"
	"github.com/unibus/unibus/membershipd/store"
	"github.com/unibus/unibus/pki"
)

// migrateToKV copies the single-node SQLite state (members, rooms, sealed
// keys, blobs) into the cluster's JetStream KV buckets and object store. It never overwrites: what
// KV already has identically is counted as present, what it has differently
// is reported as a conflict, so running it twice is safe.
func migrateToKV(ui cli.UI, args []string, stdout io.Writer) int {
	fs := newSubcommand("migrate-to-kv", "usage: membershipd migrate-to-kv --nats-url URL [--ca FILE] [--state-dir DIR] [--kv-replicas 1|3] [--identity FILE --server URL]\n\n"+
		"Copies members, rooms, sealed keys and blobs from the state dir into the cluster's KV\nand object store. "+
		"Never overwrites: conflicts are reported. A non-loopback URL needs --ca.\n"+
		"Under --bus-auth enforce, --identity is an admin's: the node at --server issues a bus\ncredential for this run only, and it is revoked when the run ends.", stdout)
	natsURL := fs.String("nats-url", "", "the cluster's NATS `URL` (comma-separated for several)")
	caFile := fs.String("ca", "", "client CA `file` that signed the nodes' client-port certificates; connects with TLS 1.3")
	certFile := fs.String("tls-cert", "", "client certificate `file`, for a client port that verifies client certificates")
	keyFile := fs.String("tls-key", "", "client key `file` for --tls-cert")
	stateDir := fs.String("state-dir", membershipd.DefaultConfig().StateDir, "the single-node state `dir` holding membershipd.db and blobs/")
	replicas := fs.Int("kv-replicas", membershipd.DefaultConfig().Cluster.KVReplicas, "replicas of buckets that do not exist yet: `1|3` (1 is not HA)")
	identity := fs.String("identity", "", "an admin's unibus identity `file`, to ask for this run's bus credential under --bus-auth enforce")
	server := fs.String("server", "http://127.0.0.1:8470", "control plane `URL` of the node behind --nats-url, which issues the credential (https:// is verified with --ca)")
	if code, done := parseSubcommand(ui, fs, args); done {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return ui.Fail(cli.WithHint(cli.Usagef("migrate-to-kv: unexpected argument %q", fs.Arg(0)), "run membershipd migrate-to-kv --help"))
	case *natsURL == "":
		return ui.Fail(cli.WithHint(cli.Usagef("migrate-to-kv needs --nats-url"), "point it at a node of the cluster, such as nats://127.0.0.1:4250"))
	case *replicas != 1 && *replicas != 3:
		return ui.Fail(cli.Usagef("--kv-replicas %d: must be 1 or 3", *replicas))
	case (*certFile == "") != (*keyFile == ""):
		return ui.Fail(cli.Usagef("--tls-cert and --tls-key go together: set both or neither"))
	case *certFile != "" && *caFile == "":
		return ui.Fail(cli.Usagef("--tls-cert needs --ca: a client certificate is only sent over TLS"))
	}
	// Refused before anything is opened or dialled: the allowlist, the
	// sealed keys and the grant must not cross a network in clear.
	if *identity != "" && strings.HasPrefix(*server, "http://") {
		if host, ok := remoteHost(strings.TrimPrefix(*server, "http://")); !ok {
			return ui.Fail(cli.WithHint(fmt.Errorf("migrate-to-kv: --server host %s is not loopback and the URL is plain http: the bus grant would cross the network unencrypted", host),
				"use the node's https:// URL, with --ca"))
		}
	}
	if host, ok := remoteHost(*natsURL); !ok && *caFile == "" {
		return ui.Fail(cli.WithHint(
			fmt.Errorf("migrate-to-kv: --nats-url host %s is not loopback and --ca is not set: members and sealed keys would cross the network unencrypted", host),
			"pass --ca with the client CA (client-ca.crt in the PKI folder) to connect with TLS"))
	}

	// No overall deadline: each NATS request has its own (nats.go's 5 s
	// default), and a large state may take a while.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sum, err := runMigration(ctx, migration{
		natsURL: *natsURL, caFile: *caFile, certFile: *certFile, keyFile: *keyFile,
		stateDir: *stateDir, replicas: *replicas, identity: *identity, server: *server,
	})
	if err != nil {
		return ui.Fail(err)
	}
	if *replicas == 1 {
		ui.Warnf("--kv-replicas 1: buckets created now have one copy and are not HA; raise them to 3 once three nodes run")
	}
	ui.Printf("migrate-to-kv %s: %s", *stateDir, sum)
	for _, c := range sum.Conflicts {
		ui.Warnf("not copied: %s", c)
	}
	if len(sum.Conflicts) > 0 {
		return ui.Fail(cli.WithHint(
			fmt.Errorf("migrate-to-kv: %d records differ from what KV already has and were left as KV has them", len(sum.Conflicts)),
			"compare the two, correct the wrong one, and run migrate-to-kv again: it copies only what is missing"))
	}
	return 0
}

type migration struct {
	natsURL, caFile, certFile, keyFile string
	stateDir, identity, server         string
	replicas                           int
}

func runMigration(ctx context.Context, m migration) (store.MigrateSummary, error) {
	var sum store.MigrateSummary
	// OpenSQLite would create an empty database; an empty source is a
	// mistyped --state-dir, not a migration.
	if _, err := os.Stat(filepath.Join(m.stateDir, "membershipd.db")); err != nil {
		return sum, cli.WithHint(fmt.Errorf("--state-dir %s: no membershipd.db there", m.stateDir),
			"point --state-dir at the single-node daemon's state dir")
	}
	opts := []nats.Option{nats.Name("membershipd migrate-to-kv"), nats.Timeout(10 * time.Second), nats.MaxReconnects(3)}
	if m.caFile != "" {
		tlsCfg, err := pki.ClientConfig(m.certFile, m.keyFile, m.caFile)
		if err != nil {
			return sum, fmt.Errorf("--ca: %w", err)
		}
		opts = append(opts, nats.Secure(tlsCfg))
	}
	if m.identity != "" {
		creds, revoke, err := runGrant(ctx, m)
		if err != nil {
			return sum, err
		}
		defer revoke()
		opts = append(opts, creds...)
	}
	// Under --bus-auth enforce a missing permission shows as an
	// asynchronous error while the request waits for a reply that never
	// comes: stop at once, and keep the error to say why.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var denied asyncDenied
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if denied.set(err) {
			cancel()
		}
	}))

	from, err := store.OpenSQLite(ctx, m.stateDir)
	if err != nil {
		return sum, err
	}
	defer from.Close()
	nc, err := nats.Connect(m.natsURL, opts...)
	if err != nil {
		return sum, cli.WithHint(fmt.Errorf("connect to %s: %w", redact(m.natsURL), err),
			"is a node listening there? under --bus-auth enforce pass --identity with an admin's identity file")
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return sum, err
	}
	wrap := func(err error) error {
		if d := denied.get(); d != nil {
			return cli.WithHint(fmt.Errorf("migrate-to-kv: refused by the bus: %v", d), "the identity must be an admin's: only admins may write the KV buckets")
		}
		return err
	}
	to, err := store.NewKV(ctx, js, store.KVOptions{Replicas: m.replicas})
	if err != nil {
		return sum, wrap(err)
	}
	blobs, err := store.NewObjectBlobs(ctx, js, m.replicas)
	if err != nil {
		return sum, wrap(err)
	}
	sum, err = store.Migrate(ctx, from, to, blobs)
	return sum, wrap(err)
}

// runGrant asks the node for a bus credential that exists for this run
// only: a fresh nkey made here, granted by the admin's signed request, and
// revoked when the run ends (it also expires by itself). Admins have no
// standing rights on the control-plane buckets.
func runGrant(ctx context.Context, m migration) ([]nats.Option, func(), error) {
	id, err := client.LoadIdentity(m.identity)
	if err != nil {
		return nil, nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, nil, err
	}
	pub, _ := kp.PublicKey()
	var opts []client.Option
	if strings.HasPrefix(m.server, "https://") && m.caFile != "" {
		// The client CA signed the node's HTTPS certificate as it signed
		// its NATS one: --ca verifies both.
		o, err := client.WithServerCA(m.caFile)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o)
	}
	c := client.New(m.server, id, opts...)
	g, err := c.CreateBusGrant(ctx, pub, 0)
	if err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 403 {
			return nil, nil, cli.WithHint(fmt.Errorf("migrate-to-kv: %s is not an admin on %s: %v", id.Handle, m.server, err),
				"the identity must be an admin's: only admins get a credential to write the KV buckets")
		}
		return nil, nil, cli.WithHint(fmt.Errorf("migrate-to-kv: ask %s for a bus credential: %w", m.server, err),
			"--server must be the control plane of the node --nats-url points at")
	}
	revoke := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.DeleteBusGrant(ctx, pub)
	}
	return []nats.Option{nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(g.InboxPrefix)}, revoke, nil
}

type asyncDenied struct {
	mu  sync.Mutex
	err error
}

// set keeps err if it is a permissions violation, and says so.
func (a *asyncDenied) set(err error) bool {
	if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
	}
	return true
}

func (a *asyncDenied) get() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// remoteHost returns the first host in urls that is not loopback (127.0.0.0/8,
// ::1 or localhost), and false; or "", true when all are loopback.
func remoteHost(urls string) (string, bool) {
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return redact(raw), false
		}
		host := u.Hostname()
		if strings.EqualFold(host, "localhost") {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		return host, false
	}
	return "", true
}

// redact drops a password from a URL before it is printed.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "the --nats-url"
}
