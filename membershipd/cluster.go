package membershipd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/unibus/unibus/pki"
)

// ClusterConfig is the cluster half of [Config]. A zero Name means a single
// node.
type ClusterConfig struct {
	Name   string
	Addr   string   // route listener, host:port
	Routes []string // bare nats://host:port URLs of the other nodes

	// Route TLS: mutual, with a route CA that is never the client CA.
	RouteTLSCert, RouteTLSKey, RouteTLSCA string

	User     string
	PassFile string // plain (0600) or age-encrypted
	// Pass comes from UNIBUS_CLUSTER_PASS, or from the deprecated
	// --cluster-pass flag (PassFromFlag), which shows in ps and journald.
	Pass         string
	PassFromFlag bool

	// AgeIdentity opens an age-encrypted PassFile; without it, the systemd
	// credential "age-identity" in CredentialsDir is used.
	AgeIdentity    string
	CredentialsDir string // $CREDENTIALS_DIRECTORY

	KVReplicas int // 1 or 3
}

// Enabled reports whether this node joins a cluster.
func (c *ClusterConfig) Enabled() bool { return c.Name != "" }

// clusterSetup is what validation of the cluster flags produces: the route
// TLS config, the password, and route URLs with credentials injected.
type clusterSetup struct {
	host     string
	port     int
	tls      *tls.Config
	user     string
	pass     string
	routes   []*url.URL
	warnings []string
}

// prepareCluster checks the cluster flags and reads the secrets, before
// anything binds. Every refusal is one line that names the flag.
func prepareCluster(cfg *Config) (*clusterSetup, error) {
	c := &cfg.Cluster
	if !c.Enabled() {
		if c.Addr != "" && c.Addr != DefaultConfig().Cluster.Addr || len(c.Routes) > 0 || c.RouteTLSCert != "" {
			return nil, errors.New("cluster flags given without --cluster-name")
		}
		return nil, nil
	}
	if cfg.NATSURL != "" {
		return nil, errors.New("--cluster-name with --nats-url: an external NATS is clustered by its own configuration")
	}
	if cfg.BusAuth != BusAuthEnforce {
		return nil, fmt.Errorf("--bus-auth %s: a cluster needs --bus-auth enforce", cfg.BusAuth)
	}
	if c.KVReplicas != 1 && c.KVReplicas != 3 {
		return nil, fmt.Errorf("--kv-replicas %d: must be 1 or 3", c.KVReplicas)
	}
	host, portStr, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("--cluster-addr %q: want host:port", c.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--cluster-addr %q: port must be 0 to 65535", c.Addr)
	}
	s := &clusterSetup{host: host, port: port, user: c.User}

	tlsGiven := c.RouteTLSCert != "" || c.RouteTLSKey != "" || c.RouteTLSCA != ""
	if tlsGiven && (c.RouteTLSCert == "" || c.RouteTLSKey == "" || c.RouteTLSCA == "") {
		return nil, errors.New("--route-tls-cert, --route-tls-key and --route-tls-ca go together")
	}
	if !tlsGiven && !isLoopbackHost(host) {
		return nil, fmt.Errorf("--cluster-addr %s: a cluster on a non-loopback address needs route TLS (--route-tls-cert, --route-tls-key, --route-tls-ca)", c.Addr)
	}
	if !tlsGiven {
		// A route that leaves the machine carries the bus and the
		// control state: TLS, whatever the bind address says.
		for _, r := range c.Routes {
			u, err := url.Parse(strings.TrimSpace(r))
			wellFormed := err == nil && (u.Scheme == "nats" || u.Scheme == "nats-route") && u.Port() != ""
			if wellFormed && !isLoopbackHost(u.Hostname()) {
				return nil, fmt.Errorf("--routes nats://%s: a route to another machine needs route TLS (--route-tls-cert, --route-tls-key, --route-tls-ca)", u.Host)
			}
		}
	}
	if tlsGiven {
		if s.tls, err = routeTLS(cfg); err != nil {
			return nil, err
		}
	}

	if s.user == "" {
		s.user = "unibus"
	}
	if s.pass, err = clusterPassword(c, &s.warnings); err != nil {
		return nil, err
	}
	for _, r := range c.Routes {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || u.Scheme != "nats" && u.Scheme != "nats-route" || u.Host == "" || u.Port() == "" {
			return nil, fmt.Errorf("--routes: %q is not a nats://host:port URL", redactURL(r))
		}
		if u.User != nil {
			s.warnings = append(s.warnings, "--routes with user:pass@ puts the cluster password in ps and journald; use --cluster-pass-file")
			if s.pass == "" {
				s.user = u.User.Username()
				s.pass, _ = u.User.Password()
			}
		}
		if s.pass != "" {
			u.User = url.UserPassword(s.user, s.pass)
		}
		s.routes = append(s.routes, u)
	}
	if s.pass == "" {
		return nil, errors.New("no cluster password: give --cluster-pass-file (or UNIBUS_CLUSTER_PASS)")
	}
	if len(s.routes) == 0 {
		// nats-server refuses a JetStream cluster without routes; say so
		// in our terms, before anything starts.
		return nil, errors.New("--cluster-name without --routes: a cluster node needs the route URLs of its peers")
	}
	return s, nil
}

// routeTLS loads the route certificate and CA and checks the two trust roots
// are kept apart.
func routeTLS(cfg *Config) (*tls.Config, error) {
	c := &cfg.Cluster
	keyFile := c.RouteTLSKey
	t, err := pki.RouteConfig(c.RouteTLSCert, keyFile, c.RouteTLSCA)
	if err != nil {
		return nil, fmt.Errorf("route tls: %w", err)
	}
	routeCAs, err := pki.ReadBundleFile(c.RouteTLSCA)
	if err != nil {
		return nil, fmt.Errorf("route tls: %w", err)
	}
	if cfg.TLSCA != "" {
		clientCAs, err := pki.ReadBundleFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("client tls: %w", err)
		}
		for _, r := range routeCAs {
			for _, cl := range clientCAs {
				if bytes.Equal(r.Raw, cl.Raw) || bytes.Equal(r.RawSubjectPublicKeyInfo, cl.RawSubjectPublicKeyInfo) {
					return nil, fmt.Errorf("--route-tls-ca %s and --tls-ca %s hold the same CA: routes and clients need separate trust roots", c.RouteTLSCA, cfg.TLSCA)
				}
			}
		}
	}
	leaf, err := x509.ParseCertificate(t.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("route tls: %s: %w", c.RouteTLSCert, err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: t.RootCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("--route-tls-cert %s does not chain to --route-tls-ca %s: %v", c.RouteTLSCert, c.RouteTLSCA, err)
	}
	return t, nil
}

// clusterPassword reads the route password from, in order: the pass file,
// UNIBUS_CLUSTER_PASS, the deprecated --cluster-pass. The returned value is
// never logged.
func clusterPassword(c *ClusterConfig, warnings *[]string) (string, error) {
	if c.PassFile != "" {
		return readPassFile(c)
	}
	if c.Pass != "" {
		if c.PassFromFlag {
			*warnings = append(*warnings, "--cluster-pass puts the cluster password in ps and journald; use --cluster-pass-file")
		}
		return c.Pass, nil
	}
	return "", nil
}

func readPassFile(c *ClusterConfig) (string, error) {
	st, err := os.Stat(c.PassFile)
	if err != nil {
		return "", fmt.Errorf("--cluster-pass-file %s: %w", c.PassFile, unwrapPath(err))
	}
	data, err := os.ReadFile(c.PassFile)
	if err != nil {
		return "", fmt.Errorf("--cluster-pass-file %s: %w", c.PassFile, unwrapPath(err))
	}
	if pki.IsAgeEncrypted(data) {
		ids, err := ageIdentities(c)
		if err != nil {
			return "", err
		}
		plain, err := pki.DecryptKey(data, ids...)
		if err != nil {
			return "", fmt.Errorf("--cluster-pass-file %s: %w", c.PassFile, err)
		}
		data = plain
	} else if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--cluster-pass-file %s: readable by others (mode %04o): chmod 600 it, or seal it with age", c.PassFile, st.Mode().Perm())
	}
	pass := strings.TrimRight(string(data), "\r\n")
	if pass == "" || strings.ContainsAny(pass, "\r\n") {
		return "", fmt.Errorf("--cluster-pass-file %s: must hold one non-empty line", c.PassFile)
	}
	return pass, nil
}

// ageIdentities reads --age-identity, or the systemd credential.
func ageIdentities(c *ClusterConfig) ([]age.Identity, error) {
	file, flag := c.AgeIdentity, "--age-identity"
	if file == "" && c.CredentialsDir != "" {
		file, flag = filepath.Join(c.CredentialsDir, "age-identity"), "credential age-identity"
	}
	if file == "" {
		return nil, fmt.Errorf("--cluster-pass-file %s is age-encrypted: give --age-identity, or run under systemd with the credential age-identity", c.PassFile)
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, file, unwrapPath(err))
	}
	if flag == "--age-identity" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s: readable by others (mode %04o): chmod 600 it", flag, file, st.Mode().Perm())
	}
	ids, err := pki.ReadIdentityFiles([]string{file})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return ids, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}
