package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/unibus/unibus/pki"
)

// cmdPKI DIR NODE...: a cluster PKI folder made with the pki package, with
// node certificates for 127.0.0.1/localhost (the layout of unibus pki).
func cmdPKI(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: pki DIR NODE...")
	}
	d := pki.Dir(ts.MkAbs(args[0]))
	cas, err := d.InitCAs(pki.InitOptions{Cluster: "test"})
	ts.Check(err)
	for _, n := range args[1:] {
		_, err := d.IssueNode(cas, pki.Node{Name: n, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, pki.IssueOptions{})
		ts.Check(err)
	}
}

// cmdAgePass PASSFILE IDENTITYFILE PASSWORD: seals PASSWORD with age (armored,
// as unibus render writes it) to a new identity written to IDENTITYFILE.
func cmdAgePass(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: agepass PASSFILE IDENTITYFILE PASSWORD")
	}
	id, err := age.GenerateX25519Identity()
	ts.Check(err)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, id.Recipient())
	ts.Check(err)
	w.Write([]byte(args[2] + "\n"))
	ts.Check(w.Close())
	ts.Check(aw.Close())
	for file, data := range map[string][]byte{args[0]: buf.Bytes(), args[1]: []byte(id.String() + "\n")} {
		ts.Check(os.MkdirAll(filepath.Dir(ts.MkAbs(file)), 0o700))
		ts.Check(os.WriteFile(ts.MkAbs(file), data, 0o600))
	}
}
