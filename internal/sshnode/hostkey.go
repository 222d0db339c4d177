package sshnode

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks a node's host key against known_hosts.
type hostKeys struct {
	file   string
	accept bool // append a host that known_hosts does not know yet
	check  ssh.HostKeyCallback
}

func loadHostKeys(file string, accept bool) (*hostKeys, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		// No file yet: every host is unknown, and accepting one makes it.
		return &hostKeys{file: file, accept: accept, check: func(string, net.Addr, ssh.PublicKey) error {
			return &knownhosts.KeyError{}
		}}, nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", file, err)
	}
	return &hostKeys{file: file, accept: accept, check: cb}, nil
}

// algorithms are the host key algorithms to offer for hostport: those of
// the keys known_hosts holds for it. Offered all, x/crypto picks its own
// favourite type, and a host known by another type looks changed. nil
// (unknown host) leaves x/crypto's default.
func (h *hostKeys) algorithms(hostport string, remote net.Addr) []string {
	// The check against a key no host has lists the keys it knows.
	var ke *knownhosts.KeyError
	if !errors.As(h.check(hostport, remote, probeKey{}), &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor are the signature algorithms a host key of type typ
// proves itself with: an RSA key signs with SHA-2 (ssh-rsa, SHA-1, is
// not offered).
func algorithmsFor(typ string) []string {
	if typ == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{typ}
}

// callback is the HostKeyCallback for node name at hostport.
func (h *hostKeys) callback(name, hostport string) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := h.check(hostport, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("node %s: the host key of %s (%s) is revoked in %s: do not connect until the host has a new key", name, hostport, ssh.FingerprintSHA256(key), re.Revoked.Filename)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			if h.accept {
				return h.add(name, hostport, key)
			}
			host, port, _ := net.SplitHostPort(hostport)
			return fmt.Errorf("node %s: host %s is not in %s; its %s key is %s: check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then accept it (ssh -p %s %s once and answer yes, or let unibus accept new host keys)",
				name, hostport, h.file, key.Type(), ssh.FingerprintSHA256(key), keyFileType(key.Type()), port, host)
		case errors.As(err, &ke):
			var known []string
			for _, k := range ke.Want {
				known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
			}
			return fmt.Errorf("node %s: the host key of %s changed: it offers %s %s, known_hosts has %s; someone may be intercepting the connection; if the host was reinstalled, check the new fingerprint on it, then remove the old line (ssh-keygen -R '%s' -f %s) and accept the new key",
				name, hostport, key.Type(), ssh.FingerprintSHA256(key), strings.Join(known, ", "), knownhosts.Normalize(hostport), h.file)
		default:
			return fmt.Errorf("node %s: checking the host key of %s: %w", name, hostport, err)
		}
	}
}

// add appends the key of a host seen for the first time to known_hosts.
func (h *hostKeys) add(name, hostport string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return fmt.Errorf("node %s: accept host key: %w", name, err)
	}
	f, err := os.OpenFile(h.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("node %s: accept host key: %w", name, err)
	}
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("node %s: accept host key: %w", name, err)
	}
	return nil
}

func keyFileType(typ string) string {
	switch {
	case strings.HasPrefix(typ, "ecdsa"):
		return "ecdsa"
	case typ == ssh.KeyAlgoRSA:
		return "rsa"
	}
	return "ed25519"
}

// probeKey is a public key no host has.
type probeKey struct{}

func (probeKey) Type() string                                 { return "unibus-probe" }
func (probeKey) Marshal() []byte                              { return []byte("unibus-probe") }
func (probeKey) Verify(data []byte, sig *ssh.Signature) error { return errors.New("probe key") }
