package membershipd

import (
	"crypto/tls"
	"net/http"
)

// httpTLSConfig is the control plane's TLS config: the NATS client port's
// certificate and TLS 1.3 floor, but no client certificate asked for. The
// requests are signed, and /healthz and /readyz must answer monitoring and
// the rollout gate, which hold no client certificate. clientTLS is cloned,
// so the NATS port keeps verifying client certificates against --tls-ca.
func httpTLSConfig(clientTLS *tls.Config) *tls.Config {
	c := clientTLS.Clone()
	c.ClientAuth = tls.NoClientCert
	c.ClientCAs = nil
	// HTTP/1.1 only, deliberately: the clients (unibus, scripts, wrk, the
	// rollout gate) send a few small requests over a kept-alive connection,
	// where HTTP/2's multiplexing buys nothing, and HTTP/2 brings its own
	// denial-of-service surface (rapid reset, CONTINUATION floods) and
	// per-stream limits that the server's timeouts do not cover.
	c.NextProtos = []string{"http/1.1"}
	return c
}

// http1Only is the http.Server protocol set that matches httpTLSConfig's
// ALPN list, so neither TLS nor h2c brings HTTP/2 in by another door.
func http1Only() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	return &p
}
