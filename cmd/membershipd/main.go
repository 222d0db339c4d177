// Command membershipd is the unibus daemon: the HTTP control plane and an
// embedded NATS server with JetStream. It parses flags and environment into a
// membershipd.Config and runs it; everything else lives in package membershipd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/membershipd"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	ui := cli.UI{Prog: "membershipd", W: stderr}
	if len(args) > 0 && args[0] == "bootstrap" {
		return bootstrap(ui, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "age-keygen" {
		return ageKeygen(ui, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "migrate-to-kv" {
		return migrateToKV(ui, args[1:], stdout)
	}
	cfg, logFormat, err := parseFlags(args, stdout, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return ui.Fail(err)
	}
	cfg.Logger, err = newLogger(stderr, logFormat, cfg.LogLevel())
	if err != nil {
		return ui.Fail(err)
	}

	// One shutdown path: SIGTERM (systemd) and SIGINT (a terminal) both
	// cancel ctx, and Run shuts down in order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	d, err := membershipd.Open(ctx, cfg)
	if err != nil {
		return ui.Fail(err)
	}
	if err := d.Run(ctx); err != nil {
		return ui.Fail(err)
	}
	return 0
}

// parseFlags reads the daemon's flags; --help and --version print to
// stdout, as they are the answer asked for, not a diagnostic.
func parseFlags(args []string, stdout io.Writer, getenv func(string) string) (membershipd.Config, string, error) {
	cfg := membershipd.DefaultConfig()
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("membershipd", flag.ContinueOnError)
	// Parse errors come back as one line through cli.UI; only --help prints
	// the flag list.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: membershipd [flags]\n       membershipd bootstrap --handle H --sign-pub KEY --age-recipient R [--state-dir DIR]\n       membershipd migrate-to-kv --nats-url URL [--ca FILE] --identity FILE [--state-dir DIR]\n       membershipd age-keygen -o FILE | -y FILE\n\nThe unibus daemon: HTTP control plane and embedded NATS + JetStream.\n\nflags:\n")
		printFlags(stdout, fs)
		fmt.Fprintf(stdout, "\nenvironment:\n  UNIBUS_NATS_MONITOR=1      open the nats-server monitor on 127.0.0.1:<monitor-port>, log quiet\n  UNIBUS_NATS_DEBUG=1|trace  verbose nats-server log (implies the monitor); trace logs payloads\n  UNIBUS_CLUSTER_PASS        route password, when no --cluster-pass-file\n  CREDENTIALS_DIRECTORY      set by systemd: the credential age-identity opens an encrypted pass file\n")
		fs.SetOutput(io.Discard)
	}
	var busAuth, jsSync, logFormat string
	var version bool
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "control plane `host:port`: HTTPS with --tls-cert; plain HTTP only on loopback unless --allow-plain-http")
	fs.BoolVar(&cfg.AllowPlainHTTP, "allow-plain-http", false, "serve the control plane as plain HTTP on a non-loopback --http-addr (no --tls-cert): for a network you trust; it warns")
	fs.StringVar(&cfg.NATSAddr, "nats-addr", cfg.NATSAddr, "embedded NATS client `host:port`")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use the external NATS at `URL`; no embedded server starts")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "`dir` for the SQLite database and the JetStream store")
	fs.StringVar(&cfg.NodeName, "node-name", host, "NATS server `name`; keep it stable: a renamed node is a new Raft peer")
	fs.StringVar(&busAuth, "bus-auth", string(cfg.BusAuth), "NATS client authentication: `off|warn|enforce`")
	fs.StringVar(&jsSync, "js-sync", cfg.JSSync.String(), "JetStream fsync: `always` (no acknowledged write lost) or a flush interval such as 2m")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate `file` (PEM) of the NATS client port and the HTTPS control plane")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "server key `file` (PEM) of the NATS client port and the HTTPS control plane")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "client CA `file`: NATS clients must present a certificate it signed (HTTPS asks for none: requests are signed)")
	fs.IntVar(&cfg.MonitorPort, "monitor-port", cfg.MonitorPort, "`port` of the loopback-only nats-server monitor (opened by UNIBUS_NATS_MONITOR or UNIBUS_NATS_DEBUG)")
	fs.Int64Var(&cfg.BlobMaxBytes, "blob-max-bytes", cfg.BlobMaxBytes, "largest blob accepted, in `bytes`")
	fs.StringVar(&cfg.FirstAdminFile, "first-admin", "", "`file` with the public, self-vouched record of the admin to create while the control plane has none (JSON as POST /v1/members)")
	var routes string
	cl := &cfg.Cluster
	fs.StringVar(&cl.Name, "cluster-name", "", "join the NATS cluster of this `name` (needs --bus-auth enforce)")
	fs.StringVar(&cl.Addr, "cluster-addr", cl.Addr, "route listener `host:port`")
	fs.StringVar(&routes, "routes", "", "comma-separated `URLs` of the other nodes' route ports, bare: nats://host:6250")
	fs.StringVar(&cl.RouteTLSCert, "route-tls-cert", "", "route certificate `file`, signed by the route CA")
	fs.StringVar(&cl.RouteTLSKey, "route-tls-key", "", "route key `file`")
	fs.StringVar(&cl.RouteTLSCA, "route-tls-ca", "", "route CA `file` (never the client CA)")
	fs.StringVar(&cl.User, "cluster-user", "unibus", "route `user` name")
	fs.StringVar(&cl.PassFile, "cluster-pass-file", "", "route password `file`: plain (mode 0600) or age-encrypted")
	fs.StringVar(&cl.Pass, "cluster-pass", "", "route `password` (deprecated: visible in ps and journald; use --cluster-pass-file or UNIBUS_CLUSTER_PASS)")
	fs.StringVar(&cl.AgeIdentity, "age-identity", "", "age identity `file` that opens an encrypted --cluster-pass-file (default: the systemd credential age-identity)")
	fs.IntVar(&cl.KVReplicas, "kv-replicas", cl.KVReplicas, "replicas of the control-plane KV buckets in a cluster: `1|3` (1 is not HA)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: `text|json`")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, "", err
		}
		return cfg, "", cli.WithHint(cli.Usagef("%v", dashes(err)), "run membershipd --help for the flags")
	}
	if version {
		fmt.Fprintln(stdout, "membershipd", membershipd.Version)
		return cfg, "", flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return cfg, "", cli.WithHint(cli.Usagef("unexpected argument %q", fs.Arg(0)), "run membershipd --help for the flags")
	}
	var err error
	if cfg.BusAuth, err = membershipd.ParseBusAuth(busAuth); err != nil {
		return cfg, "", cli.Usagef("%v", err)
	}
	if cfg.JSSync, err = membershipd.ParseJSSync(jsSync); err != nil {
		return cfg, "", cli.Usagef("%v", err)
	}
	if routes != "" {
		cl.Routes = strings.Split(routes, ",")
	}
	if cl.Pass != "" {
		cl.PassFromFlag = true
	} else {
		cl.Pass = getenv("UNIBUS_CLUSTER_PASS")
	}
	cl.CredentialsDir = getenv("CREDENTIALS_DIRECTORY")
	cfg.NATSDebugEnv = getenv("UNIBUS_NATS_DEBUG")
	cfg.NATSMonitorEnv = getenv("UNIBUS_NATS_MONITOR")
	return cfg, logFormat, nil
}

func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, cli.Usagef("--log-format %q: must be text or json", format)
}
