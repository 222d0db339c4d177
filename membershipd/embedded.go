package membershipd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// monitorHost is where the nats-server monitor endpoint listens. It is not
// configurable: the endpoint has no authentication, so it is never reachable
// from another machine.
const monitorHost = "127.0.0.1"

// embedded is a nats-server with JetStream running inside the daemon.
type embedded struct {
	srv       *server.Server
	opts      *server.Options // the last options applied; only setUsers, under Daemon.busMu, uses it
	inCluster bool
	nc        *nats.Conn
	js        jetstream.JetStream
}

// busAuth is how the embedded server authenticates clients.
type busAuth struct {
	// users, under enforce, builds the nkey users (members, the daemon,
	// grants) for the accounts of the server being configured.
	users func(daemonAcc, membersAcc *server.Account) ([]*server.NkeyUser, error)
	warn  server.Authentication // warn: logs anonymous clients
}

// clusterOptions adds routes: mutual TLS with the route CA, a route
// password injected into every route URL, and the JetStream cluster name.
func clusterOptions(opts *server.Options, name string, cs *clusterSetup) {
	port := cs.port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{
		Name:     name,
		Host:     cs.host,
		Port:     port,
		Username: cs.user,
		Password: cs.pass,
	}
	if cs.tls != nil {
		opts.Cluster.TLSConfig = cs.tls
		opts.Cluster.TLSTimeout = 2
	}
	opts.Routes = cs.routes
}

// natsOptions turns the daemon's config into nats-server options.
func natsOptions(cfg *Config, clientTLS *tls.Config, auth busAuth) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(cfg.NATSAddr)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr %q: %w", cfg.NATSAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	if port == 0 {
		port = server.RANDOM_PORT
	}
	_, debug, trace, monitor := natsLogOpts(cfg.NATSDebugEnv, cfg.NATSMonitorEnv)
	opts := &server.Options{}
	if auth.users != nil {
		if err := withAccounts(opts); err != nil {
			return nil, err
		}
	}
	*opts = server.Options{
		Accounts:   opts.Accounts,
		ServerName: cfg.NodeName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.StateDir, "jetstream"),
		// The daemon owns signals and has one shutdown path.
		NoSigs: true,
		// Our slog adapter is installed after NewServer; NoLog keeps
		// nats-server from installing its own stderr logger first.
		NoLog:      true,
		Debug:      debug,
		Trace:      trace,
		SyncAlways: cfg.JSSync.Always,
		// Lame duck closes clients spread over this window; it must fit
		// inside the daemon's shutdown bound.
		LameDuckDuration:    cfg.ShutdownTimeout / 3,
		LameDuckGracePeriod: cfg.ShutdownTimeout / 15,
	}
	if !cfg.JSSync.Always {
		opts.SyncInterval = cfg.JSSync.Interval
	}
	if monitor {
		opts.HTTPHost = monitorHost
		opts.HTTPPort = cfg.MonitorPort
		if opts.HTTPPort == 0 {
			opts.HTTPPort = server.RANDOM_PORT
		}
	}
	switch {
	case auth.users != nil:
		users, err := auth.users(accountsByName(opts))
		if err != nil {
			return nil, err
		}
		opts.Nkeys = users
	case auth.warn != nil:
		opts.CustomClientAuthentication = auth.warn
	}
	if clientTLS != nil {
		opts.TLS = true
		opts.TLSConfig = clientTLS
		opts.TLSVerify = clientTLS.ClientCAs != nil
		opts.TLSTimeout = 2
	}
	return opts, nil
}

// startEmbedded starts the server and connects the daemon to it in process,
// as the nkey self when the bus enforces authentication.
func startEmbedded(cfg *Config, log *slog.Logger, clientTLS *tls.Config, cs *clusterSetup, auth busAuth, self nkeys.KeyPair) (*embedded, error) {
	opts, err := natsOptions(cfg, clientTLS, auth)
	if err != nil {
		return nil, err
	}
	if cs != nil {
		clusterOptions(opts, cfg.Cluster.Name, cs)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	noLog, debug, trace, _ := natsLogOpts(cfg.NATSDebugEnv, cfg.NATSMonitorEnv)
	srv.SetLoggerV2(natsLogger{log: log.With("component", "nats"), quiet: noLog}, debug, trace, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server did not start listening within 10s (see the log above)")
	}
	connOpts := []nats.Option{nats.InProcessServer(srv), nats.Name("membershipd"), nats.MaxReconnects(-1)}
	if auth.users != nil {
		pub, _ := self.PublicKey()
		connOpts = append(connOpts, nats.Nkey(pub, self.Sign))
	}
	nc, err := nats.Connect("", connOpts...)
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connect to the embedded nats server: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	return &embedded{srv: srv, opts: opts, inCluster: opts.Cluster.Name != "", nc: nc, js: js}, nil
}

// accounts are the daemon's and the members' accounts of the running
// server's options, for building users (nil, nil without enforce).
func (e *embedded) accounts() (daemonAcc, membersAcc *server.Account) {
	return accountsByName(e.opts)
}

// setUsers replaces the server's nkey users live. nats-server re-checks
// every client against the new users and prunes subscriptions they lost.
func (e *embedded) setUsers(users []*server.NkeyUser) error {
	if fault := busReloadFault.Load(); fault != nil {
		if err := (*fault)(e.opts.ServerName); err != nil {
			return err
		}
	}
	if sameUsers(e.opts.Nkeys, users) {
		return nil // nothing changed: spare every client a re-check
	}
	o := e.opts.Clone()
	o.Nkeys = users
	if err := e.srv.ReloadOptions(o); err != nil {
		return err
	}
	e.opts = o
	return nil
}

// sameUsers reports whether two user lists grant exactly the same.
func sameUsers(a, b []*server.NkeyUser) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Nkey != y.Nkey || accountName(x.Account) != accountName(y.Account) ||
			!reflect.DeepEqual(x.Permissions, y.Permissions) || !reflect.DeepEqual(x.AllowedConnectionTypes, y.AllowedConnectionTypes) {
			return false
		}
	}
	return true
}

func accountName(a *server.Account) string {
	if a == nil {
		return ""
	}
	return a.Name
}

func (e *embedded) conn() *nats.Conn { return e.nc }

func (e *embedded) ready(ctx context.Context) error {
	if !e.srv.Running() {
		return errors.New("nats server is not running")
	}
	if !e.srv.JetStreamEnabled() {
		return errors.New("jetstream is starting")
	}
	if _, err := jetStreamReady(ctx, e.js); err != nil {
		return err
	}
	if e.clustered() {
		if h := convergence(ctx, e.srv, e.js); !h.Converged {
			return h.notConverged()
		}
	}
	return nil
}

func (e *embedded) clustered() bool { return e.inCluster }

func (e *embedded) health(ctx context.Context) dataPlaneHealth {
	n := e.srv.NumClients()
	h := dataPlaneHealth{
		Mode:      "embedded",
		Connected: e.nc.IsConnected(),
		Clients:   &n,
		JetStream: jetStreamHealth(ctx, e.nc, e.js),
	}
	if e.clustered() {
		c := convergence(ctx, e.srv, e.js)
		h.Cluster = &c
	}
	return h
}

// clientURL is where NATS clients connect, with the port actually bound.
func (e *embedded) clientURL() string { return e.srv.ClientURL() }

// monitorAddr is the monitor listener, or nil when it is closed.
func (e *embedded) monitorAddr() *net.TCPAddr { return e.srv.MonitorAddr() }

// shutdown puts the server in lame duck mode (stop accepting, move Raft
// leaders away, close clients gradually), bounded by ctx.
func (e *embedded) shutdown(ctx context.Context) {
	e.nc.Close()
	done := make(chan struct{})
	go func() {
		e.srv.LameDuckShutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.srv.Shutdown()
	}
	e.srv.WaitForShutdown()
}
