package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd"
	"github.com/unibus/unibus/membershipd/store"
	"github.com/unibus/unibus/pki"
)

// seedState makes a single-node state dir: admin alice, member bob, a room
// with both, their sealed keys and a blob. It returns the dir and the
// identities.
func seedState(t *testing.T) (string, map[string]*client.Identity) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	idents := map[string]*client.Identity{}
	for _, h := range []string{"alice", "bob"} {
		id, err := client.GenerateIdentity(h)
		if err != nil {
			t.Fatal(err)
		}
		idents[h] = id
		role := store.RoleMember
		if h == "alice" {
			role = store.RoleAdmin
		}
		if err := s.CreateMember(ctx, store.Member{Handle: h, Role: role, SignPub: id.SignPub(), AgeRecipient: id.Recipient(), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	room := ids.NewRoomID()
	if err := s.CreateRoom(ctx, store.Room{ID: room, Name: "ops", Owner: "alice", KeyEpoch: 1, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoomMember(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"alice", "bob"} {
		if err := s.PutSealedKey(ctx, store.SealedKey{Room: room, Handle: h, Epoch: 1, Sealed: []byte("sealed for " + h)}); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte(seedBlob))
	if err := s.Blobs().Put(ctx, hex.EncodeToString(sum[:]), []byte(seedBlob)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBlob(ctx, hex.EncodeToString(sum[:]), room, int64(len(seedBlob))); err != nil {
		t.Fatal(err)
	}
	return dir, idents
}

const seedBlob = "the ops runbook"

func startNATS(t *testing.T, users []*server.NkeyUser) *server.Server {
	t.Helper()
	return startNATSOpts(t, &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Nkeys: users,
	})
}

func startNATSOpts(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv
}

func runMigrate(args ...string) (int, string) {
	var out bytes.Buffer
	code := migrateToKV(cli.UI{Prog: "membershipd", W: &out}, args, &out)
	return code, out.String()
}

// TestMigrateToKV runs the subcommand against a loopback JetStream twice:
// the first run copies everything, the second finds it all present.
func TestMigrateToKV(t *testing.T) {
	dir, _ := seedState(t)
	srv := startNATS(t, nil)
	code, out := runMigrate("--nats-url", srv.ClientURL(), "--state-dir", dir, "--kv-replicas", "1")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := "membershipd: migrate-to-kv " + dir + ": members 2 created, 0 already present, 0 conflicting; rooms 1 created, 0 already present, 0 conflicting; sealed keys 2 created, 0 already present, 0 conflicting; blobs 1 created, 0 already present, 0 conflicting\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "membershipd: warning: --kv-replicas 1: ") {
		t.Fatalf("first run output:\n%s", out)
	}
	code, out = runMigrate("--nats-url", srv.ClientURL(), "--state-dir", dir, "--kv-replicas", "1")
	if code != 0 || !strings.Contains(out, "members 0 created, 2 already present, 0 conflicting") || !strings.Contains(out, "(nothing to do: KV already has all of it)") {
		t.Fatalf("second run: exit %d:\n%s", code, out)
	}

	// What landed reads back through the KV store.
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := store.NewKV(context.Background(), js, store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if has, err := kv.HasAdmin(context.Background()); err != nil || !has {
		t.Fatalf("HasAdmin after migrate-to-kv: %v, %v", has, err)
	}
	sum := sha256.Sum256([]byte(seedBlob))
	blobs, err := store.NewObjectBlobs(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := blobs.Open(context.Background(), hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatalf("the blob after migrate-to-kv: %v", err)
	}
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != seedBlob {
		t.Fatalf("the blob after migrate-to-kv reads %q", got)
	}
}

// TestMigrateToKVAsAdmin runs the migration against a real membershipd
// under --bus-auth enforce, so the permissions are the daemon's own: the
// admin's identity gets a bus credential for the run from the node's
// control plane, a plain member is refused one, and afterwards the admin's
// own connection has no rights on the buckets, blob bytes included.
func TestMigrateToKVAsAdmin(t *testing.T) {
	dir, idents := seedState(t)
	target := startTarget(t, idents)
	write := func(h string) string {
		p := filepath.Join(t.TempDir(), h+".identity")
		if err := os.WriteFile(p, idents[h].Marshal(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	natsURL, server := target.NATSURL(), "http://"+target.HTTPAddr()
	migrate := func(extra ...string) (int, string) {
		return runMigrate(append([]string{"--nats-url", natsURL, "--state-dir", dir, "--kv-replicas", "1"}, extra...)...)
	}

	if code, out := migrate(); code == 0 || !strings.Contains(out, "Authorization Violation") {
		t.Fatalf("anonymous migration: exit %d:\n%s", code, out)
	}
	code, out := migrate("--identity", write("bob"), "--server", server)
	if code == 0 || !strings.Contains(out, "bob is not an admin") || !strings.Contains(out, "membershipd: hint: the identity must be an admin's") {
		t.Fatalf("migration as a plain member: exit %d:\n%s", code, out)
	}
	code, out = migrate("--identity", write("alice"), "--server", server)
	if code != 0 || !strings.Contains(out, "members 2 created") {
		t.Fatalf("migration as the admin: exit %d:\n%s", code, out)
	}
	code, out = migrate("--identity", write("alice"), "--server", server)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migration as the admin: exit %d:\n%s", code, out)
	}

	// The admin's own connection: no rights on the buckets at all, not even
	// the blob she just wrote.
	var denied atomic.Int32
	nc, err := nats.Connect(natsURL, append(idents["alice"].NATSOptions(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(err.Error(), "Permissions Violation") {
			denied.Add(1)
		}
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.ObjectStore(ctx, store.ObjectBlobsBucket); err == nil {
		t.Fatal("the admin's own connection bound the blob store")
	}
	if denied.Load() == 0 {
		t.Fatal("the admin's JetStream request was not refused by the bus")
	}
}

// startTarget runs a membershipd under --bus-auth enforce whose members are
// alice (admin) and bob, with the identities of idents.
func startTarget(t *testing.T, idents map[string]*client.Identity) *membershipd.Daemon {
	t.Helper()
	ctx := context.Background()
	cfg := membershipd.DefaultConfig()
	cfg.NodeName, cfg.HTTPAddr, cfg.NATSAddr, cfg.MonitorPort = "target", "127.0.0.1:0", "127.0.0.1:0", 0
	cfg.StateDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.OpenSQLite(ctx, cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for h, role := range map[string]store.Role{"alice": store.RoleAdmin, "bob": store.RoleMember} {
		id := idents[h]
		if err := st.CreateMember(ctx, store.Member{Handle: h, Role: role, SignPub: id.SignPub(), AgeRecipient: id.Recipient(), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	d, err := membershipd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown() })
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestMigrateToKVOverTLS: with --ca the migration connects with TLS and
// verifies the node's certificate against that CA.
func TestMigrateToKVOverTLS(t *testing.T) {
	dir, _ := seedState(t)
	now := time.Now()
	ca, err := pki.NewCA(pki.CASpec{Kind: pki.ClientCA, Cluster: "test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.Leaf{Kind: pki.KindServer, Name: "n1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := leaf.KeyPEM()
	tmp := t.TempDir()
	files := map[string][]byte{"ca.crt": (&pki.Issued{Cert: ca.Cert}).CertPEM(), "n1.crt": leaf.CertPEM(), "n1.key": keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsCfg, err := pki.ServerConfig(filepath.Join(tmp, "n1.crt"), filepath.Join(tmp, "n1.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := startNATSOpts(t, &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: tlsCfg, TLSTimeout: 2,
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
	code, out := runMigrate("--nats-url", url, "--ca", filepath.Join(tmp, "ca.crt"), "--state-dir", dir, "--kv-replicas", "1")
	if code != 0 || !strings.Contains(out, "members 2 created") {
		t.Fatalf("migration over TLS: exit %d:\n%s", code, out)
	}
	// Without --ca the same (loopback) server cannot be reached in clear.
	if code, out := runMigrate("--nats-url", url, "--state-dir", dir, "--kv-replicas", "1"); code == 0 {
		t.Fatalf("plain connection to a TLS server succeeded:\n%s", out)
	}
}
