package membershipd

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/unibus/unibus/internal/cli"
)

// Version is the membershipd version reported by /healthz. The Makefile sets
// it from git at link time.
var Version = "dev"

// BusAuth is how the data plane treats NATS clients (--bus-auth).
type BusAuth string

const (
	// BusAuthOff lets anonymous clients publish and subscribe anywhere: for
	// development on one machine only.
	BusAuthOff BusAuth = "off"
	// BusAuthWarn allows anonymous clients but logs each one.
	BusAuthWarn BusAuth = "warn"
	// BusAuthEnforce requires every client to authenticate with its member
	// nkey and confines it to the subjects of its rooms.
	BusAuthEnforce BusAuth = "enforce"
)

// ParseBusAuth accepts exactly the three documented values.
func ParseBusAuth(s string) (BusAuth, error) {
	switch b := BusAuth(s); b {
	case BusAuthOff, BusAuthWarn, BusAuthEnforce:
		return b, nil
	}
	return "", fmt.Errorf("--bus-auth %q: must be off, warn or enforce", s)
}

// JSSync is when JetStream flushes its store to disk (--js-sync).
type JSSync struct {
	// Always fsyncs every write before it is acknowledged.
	Always bool
	// Interval is the periodic flush when Always is false.
	Interval time.Duration
}

// ParseJSSync accepts "always" or a Go duration such as "2m" or "500ms".
func ParseJSSync(s string) (JSSync, error) {
	if s == "always" {
		return JSSync{Always: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return JSSync{}, fmt.Errorf("--js-sync %q: must be always or a positive duration such as 2m", s)
	}
	return JSSync{Interval: d}, nil
}

func (j JSSync) String() string {
	if j.Always {
		return "always"
	}
	return j.Interval.String()
}

// Config is everything membershipd needs to run. The command line fills it;
// tests build it directly. Port 0 in any address means "pick a free port".
type Config struct {
	NodeName string // NATS server name: stable across restarts, it is the Raft peer identity
	HTTPAddr string // control plane, host:port
	NATSAddr string // embedded NATS client port, host:port
	NATSURL  string // external NATS; when set no embedded server starts
	StateDir string // SQLite DB, JetStream store, blobs

	BusAuth BusAuth
	JSSync  JSSync

	// Client-facing TLS: the NATS client port, and the HTTP control plane,
	// which then serves HTTPS with the same certificate. TLSCA, when set, is
	// the client CA: NATS clients must present a certificate it signed (the
	// HTTP listener asks for none: its requests are signed, and /healthz
	// stays reachable).
	TLSCert, TLSKey, TLSCA string

	// AllowPlainHTTP accepts a control plane on plain HTTP at a non-loopback
	// HTTPAddr (--allow-plain-http); without it such a bind is refused.
	AllowPlainHTTP bool

	MonitorPort int // loopback-only nats-server monitor, opened by the env switches

	BlobMaxBytes int64 // largest blob accepted by PUT /v1/blobs

	// FirstAdminFile is the public record of the admin a control plane
	// with no admin starts with (see readFirstAdmin).
	FirstAdminFile string

	Cluster ClusterConfig

	// NATSDebugEnv and NATSMonitorEnv are the values of UNIBUS_NATS_DEBUG and
	// UNIBUS_NATS_MONITOR, passed in so the decision stays testable.
	NATSDebugEnv, NATSMonitorEnv string

	ShutdownTimeout time.Duration // upper bound for a graceful stop
	Logger          *slog.Logger
}

// DefaultConfig returns the documented defaults of DESIGN.md.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:        "0.0.0.0:8470",
		NATSAddr:        "0.0.0.0:4250",
		StateDir:        "local_files",
		BusAuth:         BusAuthEnforce,
		BlobMaxBytes:    16 << 20,
		JSSync:          JSSync{Always: true},
		MonitorPort:     8222,
		ShutdownTimeout: 15 * time.Second,
		Cluster:         ClusterConfig{Addr: "0.0.0.0:6250", KVReplicas: 3},
	}
}

// validate checks what can be checked without touching the machine.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("--node-name is empty")
	}
	if _, err := ParseBusAuth(string(c.BusAuth)); err != nil {
		return err
	}
	if c.BlobMaxBytes < 1 {
		return fmt.Errorf("--blob-max-bytes %d: must be at least 1", c.BlobMaxBytes)
	}
	if err := checkHostPort("--http-addr", c.HTTPAddr); err != nil {
		return err
	}
	if c.NATSURL == "" {
		if err := checkHostPort("--nats-addr", c.NATSAddr); err != nil {
			return err
		}
	}
	if c.MonitorPort < 0 || c.MonitorPort > 65535 {
		return fmt.Errorf("--monitor-port %d: must be 0 to 65535", c.MonitorPort)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: set both or neither")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		return fmt.Errorf("--tls-ca needs --tls-cert and --tls-key: client certificates are verified on a TLS listener")
	}
	if c.StateDir == "" {
		return fmt.Errorf("--state-dir is empty")
	}
	if c.plainHTTPBeyondLoopback() && !c.AllowPlainHTTP {
		return cli.WithHint(fmt.Errorf("--http-addr %s is not a loopback address and there is no --tls-cert: the control plane would serve plain HTTP to the network", c.HTTPAddr),
			"serve HTTPS with --tls-cert and --tls-key, bind --http-addr 127.0.0.1:%s, or pass --allow-plain-http on a network you trust", httpPort(c.HTTPAddr))
	}
	return nil
}

// plainHTTPBeyondLoopback reports whether the control plane would answer
// other hosts without TLS. Call it after checkHostPort accepted HTTPAddr.
func (c *Config) plainHTTPBeyondLoopback() bool {
	host, _, _ := net.SplitHostPort(c.HTTPAddr)
	return c.TLSCert == "" && !isLoopbackHost(host)
}

func httpPort(hostport string) string {
	_, port, _ := net.SplitHostPort(hostport)
	return port
}

func checkHostPort(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port, such as 127.0.0.1:8470", flag, addr)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%s %q: host must be an IP address or localhost", flag, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s %q: port must be 0 to 65535", flag, addr)
	}
	return nil
}

// LogLevel is the daemon's log level: debug when UNIBUS_NATS_DEBUG asks for
// the verbose nats-server log, which is emitted at debug level.
func (c *Config) LogLevel() slog.Level {
	if _, debug, _, _ := natsLogOpts(c.NATSDebugEnv, c.NATSMonitorEnv); debug {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
