package provision

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/unibus/unibus/pki"
)

// OpState is the operator state beside the spec (state_dir) as
// [ObserveOperator] read it. [Plan] reads nothing else from the operator's
// machine, so a plan is a function of values.
//
// It holds the node keys it read (they are what the nodes get) in memory
// only; nothing of a secret reaches a plan's output but a keyed fingerprint.
type OpState struct {
	// HasCAs says whether the route CA exists (InitCAs creates both).
	HasCAs                  bool
	RouteTrust, ClientTrust pki.Bundle
	// RouteBundle and ClientBundle are the trust bundles shipped to nodes
	// (the pki block's route_ca_bundle / client_ca_bundle); nil when absent.
	RouteBundle, ClientBundle []byte
	// CAKeysEncrypted says whether the CA keys are age-encrypted.
	CAKeysEncrypted bool
	// CAKeyRecipients is who the CA keys are sealed to, as recorded when
	// they were last written ("" when no record exists).
	CAKeyRecipients string
	// Leaves are the node certificates by node and kind.
	Leaves map[string]map[pki.Kind]LeafState
	// Password is the operator copy of the cluster password; nil when none.
	Password *PasswordState
	// Sealed are the nodes' sealed copies by node.
	Sealed map[string]SealedState

	fingerprintKey []byte
}

// LeafState is one node certificate in the PKI folder.
type LeafState struct {
	Cert, Key []byte
	Parsed    *x509.Certificate
	// Problem is why the pair cannot be used (unreadable, key mismatch);
	// "" when it can.
	Problem string
}

// PasswordState is the operator copy of the cluster password.
type PasswordState struct {
	// Sealed is cluster-pass.age (ciphertext).
	Sealed []byte
	// Recipients is cluster-pass.recipients: the sorted set it is sealed to.
	Recipients string
	// Generation names the password itself, not its sealing: a node's copy
	// stays valid while the generation and the node's recipient are
	// unchanged, whoever the operators are.
	Generation string
}

// SealedState is a node's sealed copy in the state folder.
type SealedState struct {
	Sealed []byte
	// Source is what it was sealed from (recipient and generation).
	Source string
}

// State folder files besides the PKI (see secrets.go).
const (
	caRecipientsFile = "ca-keys.recipients"
	generationFile   = "cluster-pass.generation"
)

// ObserveOperator reads the operator state of s. It writes nothing and
// needs no identity: encrypted keys stay encrypted.
func ObserveOperator(s *Spec) (*OpState, error) {
	st := &OpState{Leaves: map[string]map[pki.Kind]LeafState{}, Sealed: map[string]SealedState{}}
	dir := s.Cluster.PKI.Dir
	var secrets [][]byte
	if _, err := os.Stat(dir.CACert(pki.RouteCA)); err == nil {
		st.HasCAs = true
		route, client, err := dir.Trust()
		if err != nil {
			return nil, err
		}
		st.RouteTrust, st.ClientTrust = route, client
		for _, k := range []pki.CAKind{pki.RouteCA, pki.ClientCA} {
			raw, err := os.ReadFile(dir.CAKey(k))
			if err != nil {
				return nil, err
			}
			st.CAKeysEncrypted = pki.IsAgeEncrypted(raw)
			secrets = append(secrets, raw)
		}
		rec, err := readOptional(filepath.Join(s.Cluster.StateDir, caRecipientsFile))
		if err != nil {
			return nil, err
		}
		st.CAKeyRecipients = string(rec)
		if st.RouteBundle, err = readOptional(s.Cluster.PKI.RouteCABundle); err != nil {
			return nil, err
		}
		if st.ClientBundle, err = readOptional(s.Cluster.PKI.ClientCABundle); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		m := map[pki.Kind]LeafState{}
		for _, l := range s.leaves(n) {
			m[l.Kind] = readLeaf(dir, l)
		}
		st.Leaves[n.Name] = m
	}
	if err := st.readPassword(s, &secrets); err != nil {
		return nil, err
	}
	st.fingerprintKey = fingerprintKey(secrets)
	return st, nil
}

func (st *OpState) readPassword(s *Spec, secrets *[][]byte) error {
	ps := newPasswordStore(&s.Cluster, nil, false)
	sealed, err := readOptional(ps.operatorFile())
	if err != nil || sealed == nil {
		return err
	}
	*secrets = append(*secrets, sealed)
	recips, err := readOptional(ps.recipientsFile())
	if err != nil {
		return err
	}
	gen, err := readOptional(filepath.Join(s.Cluster.StateDir, generationFile))
	if err != nil {
		return err
	}
	g := strings.TrimSpace(string(gen))
	if gen == nil {
		// Before generations were recorded a node's copy named the
		// operator copy's digest; that digest names the password until the
		// operators change.
		sum := sha256.Sum256(sealed)
		g = "operator-copy sha256:" + hex.EncodeToString(sum[:])
	}
	st.Password = &PasswordState{Sealed: sealed, Recipients: string(recips), Generation: g}
	for i := range s.Nodes {
		name := s.Nodes[i].Name
		data, err := readOptional(filepath.Join(s.Cluster.StateDir, "sealed", name+".age"))
		if err != nil {
			return err
		}
		src, err := readOptional(filepath.Join(s.Cluster.StateDir, "sealed", name+".source"))
		if err != nil {
			return err
		}
		if data != nil && src != nil {
			st.Sealed[name] = SealedState{Sealed: data, Source: string(src)}
		}
	}
	return nil
}

// readLeaf reads a leaf pair as [pki.Dir.DecideLeaf] would judge it.
func readLeaf(dir pki.Dir, l pki.Leaf) LeafState {
	certPath, keyPath := dir.LeafFiles(l)
	cert, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return LeafState{Problem: "missing"}
	}
	if err != nil {
		return LeafState{Problem: err.Error()}
	}
	ls := LeafState{Cert: cert}
	b, err := pki.ParseBundle(cert)
	if err != nil {
		ls.Problem = certPath + ": " + err.Error()
		return ls
	}
	ls.Parsed = b[0]
	if ls.Key, err = os.ReadFile(keyPath); err != nil {
		ls.Problem = err.Error()
		return ls
	}
	key, err := pki.ParseKey(ls.Key)
	if err != nil {
		ls.Problem = keyPath + ": " + err.Error()
		return ls
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(ls.Parsed.PublicKey) {
		ls.Problem = fmt.Sprintf("%s: key does not match certificate %s", keyPath, certPath)
	}
	return ls
}

func readOptional(p string) ([]byte, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// fingerprintKey keys the fingerprints of secrets in a plan: a hash of
// operator secrets that never leave the operator's machine (the CA key
// files and the operator copy of the cluster password). Whoever reads a
// plan file alone cannot test a guess of a node key against it; apply,
// beside the same state folder, derives the same key. Before any operator
// state exists no secret content is known to the plan (all of it is
// "known after apply") and the key is the label alone.
func fingerprintKey(secrets [][]byte) []byte {
	h := sha256.New()
	h.Write([]byte("unibus plan fingerprints v1\n"))
	for _, s := range secrets {
		_ = binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write(s)
	}
	return h.Sum(nil)
}
