package membershipd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/membershipd/store"
	"github.com/unibus/unibus/pki"
)

// Daemon is one membershipd: HTTP control plane, data plane, store.
//
// [Open] runs every start-up check and binds the HTTP port, so a bad flag or
// a taken port fails before anything serves; [Daemon.Start] then brings up
// NATS and HTTP; [Daemon.Shutdown] is the one way down.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	clientTLS *tls.Config   // NATS client port
	httpTLS   *tls.Config   // control plane; nil serves plain HTTP
	cluster   *clusterSetup // nil on a single node
	db        *store.SQLite // node identity; the control plane too on a single node
	// control is the control-plane state, published once it can serve:
	// at Open on a single node, once JetStream KV is reachable in a cluster.
	control atomic.Pointer[controlState]
	cs      clusterStore // a cluster node's KV store, while it comes up
	httpLn  net.Listener
	httpSrv *http.Server
	started time.Time

	mu sync.RWMutex
	dp dataPlane // nil until NATS is up

	busKey struct { // the daemon's own NATS identity under --bus-auth enforce
		kp  nkeys.KeyPair
		pub string
	}
	sysID sysIdentity // the in-process system-account user, see sysconn.go
	// lameDuck: a drain put NATS in lame duck; the node only waits for
	// its restart.
	lameDuck atomic.Bool
	bus      *busUpdates // membership changes on their way to the bus
	grants   busGrants   // short-lived credentials in the daemon's account

	firstAdmin *store.Member // --first-admin, created while no admin exists

	members sync.Map // handle -> knownMember, see Daemon.member

	health healthCache // what /healthz and /readyz show, see Daemon.healthSnapshot

	stopBackground context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open validates cfg, checks the machine can honour it (TLS files, state
// dir, free ports), opens the store and binds the HTTP listener.
func Open(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultConfig().ShutdownTimeout
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, bus: newBusUpdates()}
	var err error
	if cfg.TLSCert != "" {
		tlsCfg, err := pki.ServerConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("client tls: %w", err)
		}
		d.clientTLS = tlsCfg
		d.httpTLS = httpTLSConfig(tlsCfg)
	}
	if d.cluster, err = prepareCluster(&d.cfg); err != nil {
		return nil, err
	}
	if cfg.FirstAdminFile != "" {
		if d.firstAdmin, err = readFirstAdmin(cfg.FirstAdminFile); err != nil {
			return nil, err
		}
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := d.probePorts(); err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if _, err := st.InstanceID(ctx); err != nil {
		st.Close()
		return nil, err
	}
	ln, err := listen("--http-addr", cfg.HTTPAddr)
	if err != nil {
		st.Close()
		return nil, err
	}
	d.db, d.httpLn = st, ln
	if d.cluster == nil {
		if err := d.ensureFirstAdmin(ctx, st); err != nil {
			st.Close()
			ln.Close()
			return nil, fmt.Errorf("--first-admin: %w", err)
		}
		d.control.Store(&controlState{store: st, blobs: st.Blobs()})
	}
	return d, nil
}

// prepareStateDir creates the state dir (0700: it holds the database and the
// JetStream store) and proves it is writable now rather than at first write.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--state-dir %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("--state-dir %s: not writable: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// probePorts binds and releases each port nats-server will bind, so a taken
// port is reported with the flag that names it, before anything starts.
func (d *Daemon) probePorts() error {
	if d.cfg.NATSURL == "" {
		if err := probe("--nats-addr", d.cfg.NATSAddr); err != nil {
			return err
		}
		if d.cluster != nil {
			if err := probe("--cluster-addr", d.cfg.Cluster.Addr); err != nil {
				return err
			}
		}
		if _, _, _, monitor := natsLogOpts(d.cfg.NATSDebugEnv, d.cfg.NATSMonitorEnv); monitor && d.cfg.MonitorPort != 0 {
			addr := net.JoinHostPort(monitorHost, strconv.Itoa(d.cfg.MonitorPort))
			if err := probe("--monitor-port", addr); err != nil {
				return err
			}
		}
	}
	return nil
}

func probe(flag, addr string) error {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return nil
	}
	ln, err := listen(flag, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	_, port, _ := net.SplitHostPort(addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s %s: port %s is already in use by another process", flag, addr, port)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s %s: permission denied to bind port %s", flag, addr, port)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("%s %s: no such address on this machine", flag, addr)
	}
	return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
}

// Start brings up HTTP (answering /readyz 503 until NATS is ready), then the
// data plane, then tells systemd the service is ready.
func (d *Daemon) Start(ctx context.Context) error {
	d.started = time.Now()
	d.httpSrv = &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		Protocols:         http1Only(),
	}
	ln := d.httpLn
	if d.httpTLS != nil {
		ln = tls.NewListener(ln, d.httpTLS)
	}
	go func() {
		if err := d.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()

	bg, cancel := context.WithCancel(context.Background())
	d.stopBackground = cancel
	go d.purgeNonces(bg)

	var dp dataPlane
	if d.cfg.NATSURL != "" {
		x, err := connectExternal(d.cfg.NATSURL, d.log)
		if err != nil {
			return err
		}
		dp = x
	} else {
		auth, err := d.busAuth(ctx)
		if err != nil {
			return err
		}
		e, err := startEmbedded(&d.cfg, d.log, d.clientTLS, d.cluster, auth, d.busKey.kp)
		if err != nil {
			return err
		}
		dp = e
	}
	d.mu.Lock()
	d.dp = dp
	d.mu.Unlock()
	go d.applyBusUpdates(bg)
	if d.cluster != nil {
		js, err := jetstream.New(dp.conn())
		if err != nil {
			return err
		}
		go d.startClusterStore(bg, js)
	}

	d.logStart()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.log.Warn("could not notify systemd of readiness", "err", err)
	}
	return nil
}

// busAuth prepares the embedded server's client authentication.
func (d *Daemon) busAuth(ctx context.Context) (busAuth, error) {
	switch d.cfg.BusAuth {
	case BusAuthEnforce:
		kp, err := nkeys.CreateUser()
		if err != nil {
			return busAuth{}, err
		}
		d.busKey.kp = kp
		d.busKey.pub, _ = kp.PublicKey()
		return busAuth{users: func(daemonAcc, membersAcc *server.Account) ([]*server.NkeyUser, error) {
			users, err := d.loadBusUsers(ctx, daemonAcc, membersAcc)
			if err != nil {
				return nil, fmt.Errorf("load members for the bus: %w", err)
			}
			return users, nil
		}}, nil
	case BusAuthWarn:
		return busAuth{warn: warnAuth{log: d.log}}, nil
	}
	return busAuth{}, nil
}

func (d *Daemon) logStart() {
	attrs := []any{"node", d.cfg.NodeName, "http", d.HTTPURL(), "bus_auth", string(d.cfg.BusAuth), "js_sync", d.cfg.JSSync.String()}
	if e, ok := d.dataPlane().(*embedded); ok {
		attrs = append(attrs, "nats", e.clientURL())
		if m := e.monitorAddr(); m != nil {
			attrs = append(attrs, "monitor", m.String())
		}
	} else {
		attrs = append(attrs, "nats", "external")
	}
	if d.cluster != nil {
		attrs = append(attrs, "cluster", d.cfg.Cluster.Name, "routes", len(d.cluster.routes), "route_tls", d.cluster.tls != nil, "kv_replicas", d.cfg.Cluster.KVReplicas)
	}
	d.log.Info("membershipd serving", attrs...)
	if d.cluster != nil {
		for _, w := range d.cluster.warnings {
			d.log.Warn(w)
		}
		if d.cfg.Cluster.KVReplicas == 1 {
			d.log.Warn("--kv-replicas 1: control-plane state has one copy and is not highly available; raise it to 3 once three nodes run")
		}
	}
	if d.cfg.plainHTTPBeyondLoopback() {
		d.log.Warn(fmt.Sprintf("--allow-plain-http: the control plane serves plain HTTP on %s: member records, sealed room keys and blobs cross the network unencrypted and unauthenticated; serve HTTPS with --tls-cert and --tls-key", d.cfg.HTTPAddr))
	}
	switch d.cfg.BusAuth {
	case BusAuthOff:
		d.log.Warn("--bus-auth off: any client may publish and subscribe on any subject; for development only")
	case BusAuthWarn:
		d.log.Warn("--bus-auth warn: anonymous NATS clients are allowed")
	}
}

// Shutdown stops the daemon within cfg.ShutdownTimeout: systemd is told we
// are stopping, HTTP finishes in-flight requests, NATS goes through lame duck,
// and the store is closed last. It is safe to call more than once.
func (d *Daemon) Shutdown() error {
	d.shutdownOnce.Do(func() {
		daemon.SdNotify(false, daemon.SdNotifyStopping)
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		if d.httpSrv != nil {
			if err := d.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
		} else {
			d.httpLn.Close()
		}
		if dp := d.dataPlane(); dp != nil {
			dp.shutdown(ctx)
		}
		if d.stopBackground != nil {
			d.stopBackground()
		}
		if err := d.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		d.shutdownErr = errors.Join(errs...)
	})
	return d.shutdownErr
}

// Run starts the daemon and serves until ctx is cancelled (SIGTERM in
// cmd/membershipd), then shuts down.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		d.Shutdown()
		return err
	}
	<-ctx.Done()
	d.log.Info("shutting down")
	return d.Shutdown()
}

// controlState is where the control plane keeps members, rooms, keys and
// blobs.
type controlState struct {
	store store.Store
	blobs blobStore
}

// st is the control-plane store. Handlers behind [Daemon.signed] always
// see it set; elsewhere check [Daemon.controlReady] first.
func (d *Daemon) st() store.Store { return d.control.Load().store }

func (d *Daemon) blobStore() blobStore { return d.control.Load().blobs }

// controlReady reports whether the control-plane store can serve.
func (d *Daemon) controlReady() bool { return d.control.Load() != nil }

func (d *Daemon) dataPlane() dataPlane {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.dp
}

// HTTPAddr is the control plane's bound address.
func (d *Daemon) HTTPAddr() string { return d.httpLn.Addr().String() }

// HTTPURL is the control plane's base URL: https:// when it has a
// certificate.
func (d *Daemon) HTTPURL() string {
	if d.httpTLS != nil {
		return "https://" + d.HTTPAddr()
	}
	return "http://" + d.HTTPAddr()
}

// NATSURL is where NATS clients connect to the embedded server, or "" when
// the data plane is external or not started.
func (d *Daemon) NATSURL() string {
	if e, ok := d.dataPlane().(*embedded); ok {
		return e.clientURL()
	}
	return ""
}

// MonitorAddr is the nats-server monitor listener, or "" when it is closed.
func (d *Daemon) MonitorAddr() string {
	if e, ok := d.dataPlane().(*embedded); ok {
		if a := e.monitorAddr(); a != nil {
			return a.String()
		}
	}
	return ""
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
