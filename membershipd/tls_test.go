package membershipd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/pki"
)

// testPKI is a PKI folder with node n1 (client-facing certificate for
// localhost and 127.0.0.1) and client alice.
type testPKI struct{ dir string }

func newTestPKI(t testing.TB, cluster string) testPKI {
	t.Helper()
	dir := pki.Dir(t.TempDir())
	cas, err := dir.InitCAs(pki.InitOptions{Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	node := pki.Node{Name: "n1", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, err := dir.IssueNode(cas, node, pki.IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dir.IssueClient(cas.Client, pki.Leaf{Name: "alice"}, pki.IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	return testPKI{string(dir)}
}

func (p testPKI) path(elem ...string) string {
	return filepath.Join(append([]string{p.dir}, elem...)...)
}

// withNodeCert gives cfg node n1's server certificate and the client CA.
func (p testPKI) withNodeCert(cfg Config) Config {
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = p.path("nodes", "n1", "client.crt"), p.path("nodes", "n1", "client.key"), p.path("client-ca.crt")
	return cfg
}

// httpsClient trusts only the client CA of p, TLS 1.3, like unibus does.
func (p testPKI) httpsClient(t testing.TB) *http.Client {
	t.Helper()
	cfg, err := pki.ClientConfig("", "", p.path("client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// TestClientTLS runs the embedded server with a client-CA-signed server
// certificate and --tls-ca: a client with a client-CA certificate connects,
// one without a certificate or with a route-CA certificate does not, and the
// daemon's own in-process connection (readiness) still works. Serving HTTPS
// from the same certificate does not loosen the NATS port.
func TestClientTLS(t *testing.T) {
	p := newTestPKI(t, "test")
	d := startDaemon(t, p.withNodeCert(testConfig(t)))
	hc := p.httpsClient(t)
	waitFor(t, "readyz 200 over https", 10*time.Second, func() bool { return statusOf(t, hc, d.HTTPURL()+"/readyz") == 200 })
	var h health
	getJSONWith(t, hc, d.HTTPURL()+"/healthz", &h)
	if !h.Posture.ClientTLS || !h.Posture.ClientCert || !h.Posture.HTTPTLS {
		t.Errorf("posture %+v; want client_tls, client_cert_auth and http_tls true", h.Posture)
	}

	natsURL := strings.Replace(d.NATSURL(), "nats://", "tls://", 1)
	trustServer := nats.RootCAs(p.path("client-ca.crt"))

	nc, err := nats.Connect(natsURL, trustServer, nats.ClientCert(p.path("clients", "alice.crt"), p.path("clients", "alice.key")))
	if err != nil {
		t.Fatalf("client with a client-CA certificate refused: %v", err)
	}
	if err := nc.Publish("hello", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	if nc, err := nats.Connect(natsURL, trustServer, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("client without a certificate was accepted")
	}
	if nc, err := nats.Connect(natsURL, trustServer, nats.NoReconnect(), nats.ClientCert(p.path("nodes", "n1", "route.crt"), p.path("nodes", "n1", "route.key"))); err == nil {
		nc.Close()
		t.Fatal("client with a route-CA certificate was accepted on the client port")
	}
}

// TestHTTPS: a node with a server certificate serves its control plane as
// HTTPS on the same listener as /healthz and /readyz, TLS 1.3 only, HTTP/1.1
// with keep-alive, no client certificate asked for; plain HTTP on that port
// gets no answer from the API, and a client trusting another CA refuses the
// server.
func TestHTTPS(t *testing.T) {
	p := newTestPKI(t, "test")
	cfg := p.withNodeCert(testConfig(t))
	cfg.BusAuth = BusAuthEnforce
	alice := mustIdentity(t, "alice")
	if _, err := Bootstrap(context.Background(), cfg.StateDir, "alice", alice.SignPub(), alice.Recipient(), selfVouch(t, alice)); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	if !strings.HasPrefix(d.HTTPURL(), "https://") {
		t.Fatalf("HTTPURL %s; want https://", d.HTTPURL())
	}
	hc := p.httpsClient(t)
	waitFor(t, "readyz 200 over https", 10*time.Second, func() bool { return statusOf(t, hc, d.HTTPURL()+"/readyz") == 200 })

	t.Run("TLS 1.3, HTTP/1.1, kept alive, no client certificate", func(t *testing.T) {
		var reused []bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		for range 2 {
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", d.HTTPURL()+"/healthz", nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || resp.Proto != "HTTP/1.1" {
				t.Fatalf("answer over %s, TLS %+v; want TLS 1.3 and HTTP/1.1", resp.Proto, resp.TLS)
			}
		}
		if len(reused) != 2 || !reused[1] {
			t.Errorf("connection reuse %v; want the second request on the kept-alive connection", reused)
		}
	})

	t.Run("signed requests over HTTPS", func(t *testing.T) {
		ca, err := client.WithServerCA(p.path("client-ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.New(d.HTTPURL(), alice, ca).Member(context.Background(), "alice"); err != nil {
			t.Fatalf("signed GET over https: %v", err)
		}
	})

	t.Run("HTTP/2 is not offered", func(t *testing.T) {
		cfg, _ := pki.ClientConfig("", "", p.path("client-ca.crt"))
		cfg.NextProtos = []string{"h2", "http/1.1"}
		c, err := tls.Dial("tcp", d.HTTPAddr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Fatalf("ALPN chose %q; want http/1.1", got)
		}
	})

	t.Run("TLS 1.2 refused", func(t *testing.T) {
		cfg, _ := pki.ClientConfig("", "", p.path("client-ca.crt"))
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if c, err := tls.Dial("tcp", d.HTTPAddr(), cfg); err == nil {
			c.Close()
			t.Fatal("a TLS 1.2 handshake succeeded")
		}
	})

	t.Run("plain HTTP gets no answer from the API", func(t *testing.T) {
		resp, err := http.Get("http://" + d.HTTPAddr() + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || json.Valid(body) {
				t.Fatalf("plain HTTP on the HTTPS port: %d %q; want net/http's 400 for HTTP on an HTTPS port", resp.StatusCode, body)
			}
		}
	})

	t.Run("another CA's client refuses the server", func(t *testing.T) {
		other := newTestPKI(t, "other")
		ca, err := client.WithServerCA(other.path("client-ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.New(d.HTTPURL(), alice, ca).Member(context.Background(), "alice")
		var certErr *client.ServerCertError
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &certErr) || !errors.As(err, &unknown) {
			t.Fatalf("client trusting another CA: %v; want a ServerCertError for an unknown authority", err)
		}
		if certErr.CAFile != other.path("client-ca.crt") || !strings.Contains(err.Error(), d.HTTPURL()) {
			t.Errorf("error %q does not name the server and the CA file", err)
		}
	})

	t.Run("system roots refuse the server", func(t *testing.T) {
		_, err := client.New(d.HTTPURL(), alice).Member(context.Background(), "alice")
		var certErr *client.ServerCertError
		if !errors.As(err, &certErr) || certErr.CAFile != "" {
			t.Fatalf("client on the system roots: %v; want a ServerCertError without a CA file", err)
		}
	})
}

// TestPlainHTTPBeyondLoopback: without a certificate, a non-loopback
// --http-addr is refused in Open, before anything binds, unless
// AllowPlainHTTP, which starts and says so in the log.
func TestPlainHTTPBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		cfg := testConfig(t)
		cfg.HTTPAddr = addr
		if _, err := Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "plain HTTP to the network") {
			t.Errorf("--http-addr %s without a certificate: Open said %v; want the plain-HTTP refusal", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0", "localhost:0"} {
		cfg := testConfig(t)
		cfg.HTTPAddr = addr
		if err := cfg.validate(); err != nil {
			t.Errorf("--http-addr %s: %v; loopback plain HTTP is for development and must start", addr, err)
		}
	}
	p := newTestPKI(t, "test")
	cfg := p.withNodeCert(testConfig(t))
	cfg.HTTPAddr = "0.0.0.0:0"
	if err := cfg.validate(); err != nil {
		t.Errorf("--http-addr 0.0.0.0 with a certificate: %v", err)
	}

	logs := &lockedBuffer{}
	cfg = testConfig(t)
	cfg.HTTPAddr, cfg.AllowPlainHTTP = "0.0.0.0:0", true
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	d := startDaemon(t, cfg)
	if statusOf(t, http.DefaultClient, "http://"+loopbackOf(t, d.HTTPAddr())+"/healthz") != 200 {
		t.Fatal("--allow-plain-http: /healthz does not answer")
	}
	if !strings.Contains(logs.String(), "--allow-plain-http: the control plane serves plain HTTP on 0.0.0.0:0") {
		t.Errorf("no plain-HTTP warning in the log:\n%s", logs.String())
	}
}

// loopbackOf is the loopback address of a listener bound to every interface.
func loopbackOf(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// lockedBuffer collects log output written from the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func statusOf(t testing.TB, hc *http.Client, url string) int {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func getJSONWith(t testing.TB, hc *http.Client, url string, v any) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
