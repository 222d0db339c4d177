package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/unibus/unibus/pki"
)

// Option configures a [Client] made by [New].
type Option func(*Client)

// WithServerCA makes the client trust, for an https:// server, only the CA
// certificates in file: a cluster's client CA (client-ca.crt), which signs
// every node's server certificate. Neither the system roots nor any other
// CA is trusted then.
func WithServerCA(file string) (Option, error) {
	cfg, err := pki.ClientConfig("", "", file)
	if err != nil {
		return nil, fmt.Errorf("--server-ca: %w", err)
	}
	return func(c *Client) {
		c.http.Transport = newTransport(cfg)
		c.serverCA = file
	}, nil
}

// newTransport is http.DefaultTransport's pooling and timeouts with the
// given TLS config, HTTP/1.1 only (membershipd speaks nothing else).
func newTransport(cfg *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	t.ForceAttemptHTTP2 = false
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	return t
}

// defaultHTTP is the client of [New] without [WithServerCA]: the system
// roots, and TLS 1.3 as everywhere in unibus.
func defaultHTTP() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: newTransport(&tls.Config{MinVersion: pki.MinTLSVersion})}
}

// ServerCertError is a server certificate that does not verify against the
// CA the client trusts: another cluster's node, a wrong --server-ca, or
// someone in the middle.
type ServerCertError struct {
	Server string // the control plane's base URL
	CAFile string // the --server-ca bundle verified against; "" for the system roots
	Err    error
}

func (e *ServerCertError) Error() string {
	trust := "the system roots (no --server-ca)"
	if e.CAFile != "" {
		trust = "the client CA in " + e.CAFile
	}
	return fmt.Sprintf("server %s: its certificate does not verify against %s: %v", e.Server, trust, e.reason())
}

func (e *ServerCertError) Unwrap() error { return e.Err }

// reason is the x509 verdict alone, without the URL and "tls:" wrapping
// that net/http puts around it.
func (e *ServerCertError) reason() error {
	var cv *tls.CertificateVerificationError
	if errors.As(e.Err, &cv) {
		return cv.Err
	}
	return e.Err
}

// certError turns a failed certificate verification into a
// *ServerCertError and leaves every other error as it is.
func (c *Client) certError(err error) error {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) {
		return &ServerCertError{Server: c.base, CAFile: c.serverCA, Err: err}
	}
	return err
}

// WithHTTPClient sends the client's requests through hc, for a caller
// that reaches the node its own way (an SSH tunnel to its loopback, with
// the TLS settings to verify it).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}
