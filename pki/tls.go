package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// MinTLSVersion is the floor for every listener and dialer unibus configures:
// client port, route port and HTTP.
const MinTLSVersion = tls.VersionTLS13

// baseConfig is the one place TLS policy lives; every config below starts here.
func baseConfig() *tls.Config {
	return &tls.Config{MinVersion: MinTLSVersion}
}

// LoadKeyPair reads a PEM certificate and its private key, naming the file
// that is wrong when one is.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s: %w", certFile, unwrapPathError(err))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key %s: %w", keyFile, unwrapPathError(err))
	}
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		return tls.Certificate{}, fmt.Errorf("certificate %s: no PEM CERTIFICATE block", certFile)
	}
	if b, _ := pem.Decode(keyPEM); b == nil {
		return tls.Certificate{}, fmt.Errorf("key %s: no PEM block", keyFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// LoadCertPool reads a PEM bundle of CA certificates. An empty or corrupt
// bundle is an error: an empty pool would trust nothing, silently.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA bundle %s: %w", file, unwrapPathError(err))
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: %w", file, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle %s: no PEM CERTIFICATE block", file)
	}
	return pool, nil
}

// ServerConfig is the TLS config of a client-facing listener (NATS client
// port, HTTP). With clientCAFile set, clients must present a certificate that
// chains to it.
func ServerConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	pair, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig()
	cfg.Certificates = []tls.Certificate{pair}
	if clientCAFile != "" {
		pool, err := LoadCertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// RouteConfig is the TLS config of the cluster route port: mutual TLS where
// each node both serves and dials with its route certificate and trusts only
// the route CA.
func RouteConfig(certFile, keyFile, routeCAFile string) (*tls.Config, error) {
	pair, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := LoadCertPool(routeCAFile)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig()
	cfg.Certificates = []tls.Certificate{pair}
	cfg.RootCAs = pool
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// ClientConfig is the TLS config of a dialer on a client-facing listener:
// it trusts the client CA bundle (which signs the nodes' client-facing
// server certificates) and, when certFile is set, presents a client
// certificate.
func ClientConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	pool, err := LoadCertPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig()
	cfg.RootCAs = pool
	if certFile != "" {
		pair, err := LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// unwrapPathError drops the path from an *os.PathError: callers name the file
// themselves, so it is not said twice.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
