package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestWriteFileAtomicModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new"), KeyMode); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after replacing a 0644 file, want 0600", fi.Mode().Perm())
	}
	if data, _ := os.ReadFile(p); string(data) != "new" {
		t.Errorf("content %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left in the folder, want no temporary file", len(entries))
	}
}

// Init and issue never replace a key unless forced, and a refusal changes
// nothing: the node's second key is not written either.
func TestRefuseToOverwriteKeys(t *testing.T) {
	c := newCluster(t, P256)
	if _, err := c.dir.InitCAs(InitOptions{Cluster: "test"}); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second init: %v, want ErrKeyExists", err)
	}
	_, serverKey := c.files(KindServer, "n1")
	routeCrt, routeKey := c.files(KindRoute, "n1")
	if err := os.Remove(serverKey); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(routeCrt)
	_, err := c.dir.IssueNode(c.cas, Node{Name: "n1", DNS: []string{"n1.test"}}, IssueOptions{})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != routeKey || !errors.Is(err, ErrKeyExists) {
		t.Fatalf("reissue without force: %v, want ErrKeyExists naming %s", err, routeKey)
	}
	if _, err := os.Stat(serverKey); err == nil {
		t.Error("a refused issue wrote the node's other key")
	}
	if _, err := c.dir.IssueNode(c.cas, Node{Name: "n1", DNS: []string{"n1.test"}}, IssueOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(routeCrt); bytes.Equal(before, after) {
		t.Error("forced reissue left the certificate as it was")
	}
	if fi, _ := os.Stat(routeKey); fi.Mode().Perm() != KeyMode {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
}

// Age-encrypted CA keys: the file holds no PEM key, it opens only with the
// right identity, and issuance works from the key in memory.
func TestAgeEncryptedCAKeys(t *testing.T) {
	op, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := age.GenerateX25519Identity()
	d := Dir(t.TempDir())
	if _, err := d.InitCAs(InitOptions{Cluster: "c", Recipients: []age.Recipient{op.Recipient()}}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(d.CAKey(RouteCA))
	if err != nil {
		t.Fatal(err)
	}
	if !IsAgeEncrypted(raw) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("route-ca.key is not age-encrypted:\n%s", raw)
	}
	if _, err := d.LoadCAs(); !errors.Is(err, ErrNeedIdentity) {
		t.Errorf("load without identity: %v", err)
	}
	if _, err := d.LoadCAs(stranger); err == nil || !strings.Contains(err.Error(), d.CAKey(RouteCA)) {
		t.Errorf("load with the wrong identity: %v", err)
	}
	cas, err := d.LoadCAs(op)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.IssueClient(cas.Client, Leaf{Name: "alice"}, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := d.Check(CheckOptions{}); len(r.Problems) != 0 {
		t.Errorf("check of an age-encrypted folder: %v", r.Problems)
	}
}

// Each bad input is one error that names the file.
func TestBadInputNamesTheFile(t *testing.T) {
	c := newCluster(t, P256)
	crt, _ := c.files(KindClient, "alice")
	_, otherKey := c.files(KindRoute, "n1")
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.crt")
	os.WriteFile(corrupt, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaFile := filepath.Join(dir, "rsa.key")
	os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	for _, tc := range []struct {
		name string
		err  error
		file string
		want string
	}{
		{"corrupt PEM", func() error { _, err := ReadCertFile(corrupt); return err }(), corrupt, "no PEM CERTIFICATE block"},
		{"missing", func() error { _, err := ReadCertFile(corrupt + ".nope"); return err }(), corrupt + ".nope", "no such file"},
		{"unknown key type", func() error { _, err := ReadKeyFile(rsaFile); return err }(), rsaFile, "unknown key type RSA"},
		{"key that does not match", func() error { _, err := LoadKeyPair(crt, otherKey); return err }(), otherKey, "private key does not match"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.file) || !strings.Contains(tc.err.Error(), tc.want) || strings.Contains(tc.err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming %s and saying %q", tc.name, tc.err, tc.file, tc.want)
		}
	}
}
