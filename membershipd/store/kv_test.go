package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/internal/ids"
)

func member(handle string, role Role) Member {
	return Member{
		Handle: handle, Role: role,
		SignPub:      "UTEST" + strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(handle)),
		AgeRecipient: "age1" + handle,
		// Stores keep a vouch as given (the API verifies it), so any
		// value shows it survives the round trip.
		VouchedBy: "alice", VouchSig: "vouch-of-" + handle,
		Created: time.Unix(1767225600, 0).UTC(),
	}
}

func openTestSQLite(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTestKV(t *testing.T, js jetstream.JetStream, opts KVOptions) *KV {
	t.Helper()
	s, err := NewKV(testCtx(t), js, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoreBehaviour runs one behaviour table against both stores: the
// SQLite store is the contract, the KV store must behave the same.
func TestStoreBehaviour(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testStoreBehaviour(t, openTestSQLite(t)) })
	t.Run("kv", func(t *testing.T) {
		testStoreBehaviour(t, openTestKV(t, testConnect(t, testJetStream(t)), KVOptions{Replicas: 1}))
	})
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testStoreBehaviour(t *testing.T, s Store) {
	ctx := testCtx(t)

	// Members and the first admin.
	has, err := s.HasAdmin(ctx)
	must(t, "HasAdmin", err)
	if has {
		t.Fatal("HasAdmin on an empty store")
	}
	alice := member("alice", RoleMember)
	must(t, "CreateFirstAdmin alice", s.CreateFirstAdmin(ctx, alice))
	wantErr(t, "CreateFirstAdmin a second time", s.CreateFirstAdmin(ctx, member("mallory", RoleAdmin)), ErrExists)
	if _, err := s.Member(ctx, "mallory"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused first admin was stored: %v", err)
	}
	got, err := s.Member(ctx, "alice")
	must(t, "Member alice", err)
	alice.Role = RoleAdmin
	if got != alice {
		t.Fatalf("Member alice = %+v, want %+v", got, alice)
	}
	if has, _ := s.HasAdmin(ctx); !has {
		t.Fatal("HasAdmin false after CreateFirstAdmin")
	}
	bob, carol := member("bob", RoleMember), member("carol", RoleMember)
	must(t, "CreateMember bob", s.CreateMember(ctx, bob))
	must(t, "CreateMember carol", s.CreateMember(ctx, carol))
	wantErr(t, "CreateMember bob again", s.CreateMember(ctx, bob), ErrExists)
	twin := member("bobs-twin", RoleMember)
	twin.SignPub = bob.SignPub
	wantErr(t, "CreateMember with bob's signing key", s.CreateMember(ctx, twin), ErrExists)
	other := member("bob", RoleMember)
	other.SignPub = "UOTHERKEY"
	wantErr(t, "CreateMember bob with another key", s.CreateMember(ctx, other), ErrExists)
	wantErr(t, "Member nobody", func() error { _, err := s.Member(ctx, "nobody"); return err }(), ErrNotFound)
	all, err := s.AllMembers(ctx)
	must(t, "AllMembers", err)
	if hs := handles(all); !slices.Equal(hs, []string{"alice", "bob", "carol"}) {
		t.Fatalf("AllMembers = %v", hs)
	}

	// Rooms and membership.
	roomID := ids.NewRoomID()
	room := Room{ID: roomID, Name: "ops", Owner: "alice", KeyEpoch: 1, Created: time.Unix(1767225700, 0).UTC()}
	must(t, "CreateRoom", s.CreateRoom(ctx, room))
	wantErr(t, "CreateRoom again", s.CreateRoom(ctx, room), ErrExists)
	must(t, "AddRoomMember bob", s.AddRoomMember(ctx, roomID, "bob"))
	wantErr(t, "AddRoomMember bob again", s.AddRoomMember(ctx, roomID, "bob"), ErrExists)
	wantErr(t, "AddRoomMember nobody", s.AddRoomMember(ctx, roomID, "nobody"), ErrNotFound)
	wantErr(t, "AddRoomMember to no room", s.AddRoomMember(ctx, ids.NewRoomID(), "bob"), ErrNotFound)
	r, err := s.Room(ctx, roomID)
	must(t, "Room", err)
	if !slices.Equal(r.Members, []string{"alice", "bob"}) || r.KeyEpoch != 1 || r.Owner != "alice" || r.Name != "ops" || !r.Created.Equal(room.Created) {
		t.Fatalf("Room = %+v", r)
	}
	wantErr(t, "Room unknown", func() error { _, err := s.Room(ctx, ids.NewRoomID()); return err }(), ErrNotFound)
	second := Room{ID: ids.NewRoomID(), Name: "dev", Owner: "carol", KeyEpoch: 1, Created: time.Unix(1767225800, 0).UTC()}
	must(t, "CreateRoom dev", s.CreateRoom(ctx, second))
	rooms, err := s.AllRooms(ctx)
	must(t, "AllRooms", err)
	if len(rooms) != 2 || rooms[0].ID != roomID || rooms[1].ID != second.ID {
		t.Fatalf("AllRooms = %+v", rooms)
	}
	of, err := s.RoomsOf(ctx, "bob")
	must(t, "RoomsOf bob", err)
	if len(of) != 1 || of[0].ID != roomID {
		t.Fatalf("RoomsOf bob = %+v", of)
	}

	// Sealed keys follow the epoch and the membership.
	wantErr(t, "PutSealedKey stale epoch", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "bob", Epoch: 2, Sealed: []byte("x")}), ErrStaleEpoch)
	wantErr(t, "PutSealedKey to a non-member", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "carol", Epoch: 1, Sealed: []byte("x")}), ErrNotMember)
	wantErr(t, "PutSealedKey no room", s.PutSealedKey(ctx, SealedKey{Room: ids.NewRoomID(), Handle: "bob", Epoch: 1, Sealed: []byte("x")}), ErrNotFound)
	must(t, "PutSealedKey alice", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "alice", Epoch: 1, Sealed: []byte("for alice")}))
	must(t, "PutSealedKey bob", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "bob", Epoch: 1, Sealed: []byte("for bob")}))
	k, err := s.SealedKey(ctx, roomID, "bob")
	must(t, "SealedKey bob", err)
	if k.Epoch != 1 || string(k.Sealed) != "for bob" || k.Room != roomID || k.Handle != "bob" {
		t.Fatalf("SealedKey bob = %+v", k)
	}
	wantErr(t, "SealedKey carol", func() error { _, err := s.SealedKey(ctx, roomID, "carol"); return err }(), ErrNotFound)

	epoch, err := s.RemoveRoomMember(ctx, roomID, "bob")
	must(t, "RemoveRoomMember bob", err)
	if epoch != 2 {
		t.Fatalf("RemoveRoomMember epoch = %d, want 2", epoch)
	}
	wantErr(t, "SealedKey of removed bob", func() error { _, err := s.SealedKey(ctx, roomID, "bob"); return err }(), ErrNotFound)
	wantErr(t, "RemoveRoomMember bob again", func() error { _, err := s.RemoveRoomMember(ctx, roomID, "bob"); return err }(), ErrNotMember)
	wantErr(t, "PutSealedKey at the old epoch", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "alice", Epoch: 1, Sealed: []byte("old")}), ErrStaleEpoch)
	// The remaining member still gets her old-epoch key until re-keyed;
	// its epoch tells her to make a new one.
	k, err = s.SealedKey(ctx, roomID, "alice")
	must(t, "SealedKey alice after the bump", err)
	if k.Epoch != 1 {
		t.Fatalf("alice's key epoch = %d, want 1", k.Epoch)
	}
	if r, _ := s.Room(ctx, roomID); r.KeyEpoch != 2 || r.Has("bob") {
		t.Fatalf("room after removal = %+v", r)
	}
	// Back in the room, bob has no key until someone seals the new one.
	must(t, "AddRoomMember bob back", s.AddRoomMember(ctx, roomID, "bob"))
	wantErr(t, "SealedKey of re-added bob", func() error { _, err := s.SealedKey(ctx, roomID, "bob"); return err }(), ErrNotFound)
	must(t, "PutSealedKey bob at 2", s.PutSealedKey(ctx, SealedKey{Room: roomID, Handle: "bob", Epoch: 2, Sealed: []byte("new")}))
	if k, err := s.SealedKey(ctx, roomID, "bob"); err != nil || k.Epoch != 2 || string(k.Sealed) != "new" {
		t.Fatalf("SealedKey bob at 2 = %+v, %v", k, err)
	}

	// Blobs.
	sum := strings.Repeat("ab", 32)
	must(t, "AddBlob", s.AddBlob(ctx, sum, roomID, 10))
	must(t, "AddBlob again", s.AddBlob(ctx, sum, roomID, 10))
	if in, err := s.BlobInRoom(ctx, sum, roomID); err != nil || !in {
		t.Fatalf("BlobInRoom = %v, %v", in, err)
	}
	if in, err := s.BlobInRoom(ctx, sum, second.ID); err != nil || in {
		t.Fatalf("BlobInRoom other room = %v, %v", in, err)
	}

	// Nonces.
	exp := time.Now().Add(time.Minute)
	must(t, "UseNonce", s.UseNonce(ctx, "alice:n1", exp))
	wantErr(t, "UseNonce replayed", s.UseNonce(ctx, "alice:n1", exp), ErrReplay)
	must(t, "UseNonce another", s.UseNonce(ctx, "bob:n1", exp))
}

func handles(ms []Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Handle)
	}
	return out
}

// TestKVNonceExpiry: a nonce is forgotten once the bucket's MaxAge passes,
// and only then.
func TestKVNonceExpiry(t *testing.T) {
	ctx := testCtx(t)
	s := openTestKV(t, testConnect(t, testJetStream(t)), KVOptions{Replicas: 1, NonceTTL: time.Second})
	must(t, "UseNonce", s.UseNonce(ctx, "alice:n", time.Now().Add(time.Second)))
	wantErr(t, "UseNonce replayed at once", s.UseNonce(ctx, "alice:n", time.Now().Add(time.Second)), ErrReplay)
	if err := s.UseNonce(ctx, "alice:long", time.Now().Add(time.Hour)); err == nil || errors.Is(err, ErrReplay) {
		t.Fatalf("UseNonce beyond the bucket's TTL: %v, want a refusal", err)
	}
	time.Sleep(1100 * time.Millisecond)
	// Expiry runs on the server's timer: poll for the behaviour, no
	// assertion on how long it took.
	for {
		err := s.UseNonce(ctx, "alice:n", time.Now().Add(time.Second))
		if err == nil {
			return
		}
		wantErr(t, "UseNonce after the TTL", err, ErrReplay)
		if ctx.Err() != nil {
			t.Fatal("nonce never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKVCrashBetweenRemoveSteps: RemoveRoomMember updates the room before it
// deletes the key. A crash in between leaves the key in the bucket; it is
// never served, not even after the member is added back.
func TestKVCrashBetweenRemoveSteps(t *testing.T) {
	ctx := testCtx(t)
	s := openTestKV(t, testConnect(t, testJetStream(t)), KVOptions{})
	must(t, "alice", s.CreateMember(ctx, member("alice", RoleAdmin)))
	must(t, "bob", s.CreateMember(ctx, member("bob", RoleMember)))
	id := ids.NewRoomID()
	must(t, "room", s.CreateRoom(ctx, Room{ID: id, Name: "r", Owner: "alice", KeyEpoch: 1}))
	must(t, "add bob", s.AddRoomMember(ctx, id, "bob"))
	must(t, "bob's key", s.PutSealedKey(ctx, SealedKey{Room: id, Handle: "bob", Epoch: 1, Sealed: []byte("k1")}))

	// RemoveRoomMember's first step only, as if the node died after it.
	_, err := s.casUpdate(ctx, s.rooms, BucketRooms, id, func(e entry) ([]byte, error) {
		r, _ := decodeRoom(id, e.value)
		r.Members = slices.DeleteFunc(r.Members, func(h string) bool { return h == "bob" })
		r.KeyEpoch++
		return json.Marshal(r)
	})
	must(t, "room step", err)
	if _, err := s.get(ctx, BucketSealed, sealedKeyName(id, "bob")); err != nil {
		t.Fatalf("the simulated crash should leave bob's key stored: %v", err)
	}
	wantErr(t, "SealedKey of removed bob", func() error { _, err := s.SealedKey(ctx, id, "bob"); return err }(), ErrNotFound)
	must(t, "add bob back", s.AddRoomMember(ctx, id, "bob"))
	wantErr(t, "SealedKey of re-added bob", func() error { _, err := s.SealedKey(ctx, id, "bob"); return err }(), ErrNotFound)
}

// TestKVKeysAreNotSubjects: a handle or room id that would be a subject
// wildcard never turns a lookup into a wildcard read.
func TestKVKeysAreNotSubjects(t *testing.T) {
	ctx := testCtx(t)
	s := openTestKV(t, testConnect(t, testJetStream(t)), KVOptions{})
	must(t, "alice", s.CreateMember(ctx, member("alice", RoleAdmin)))
	for _, h := range []string{"*", ">", "al.*", ""} {
		wantErr(t, fmt.Sprintf("Member(%q)", h), func() error { _, err := s.Member(ctx, h); return err }(), ErrNotFound)
		wantErr(t, fmt.Sprintf("Room(%q)", h), func() error { _, err := s.Room(ctx, h); return err }(), ErrNotFound)
	}
}

// TestKVSingleNodeRefusesR3: replicas a lone server cannot hold are a
// clear error, at creation and when raised.
func TestKVSingleNodeRefusesR3(t *testing.T) {
	ctx := testCtx(t)
	js := testConnect(t, testJetStream(t))
	if _, err := NewKV(ctx, js, KVOptions{Replicas: 3}); !errors.Is(err, ErrTooFewPeers) {
		t.Fatalf("NewKV R3 on one server: %v, want ErrTooFewPeers", err)
	}
	s := openTestKV(t, js, KVOptions{Replicas: 1})
	if err := s.SetReplicas(ctx, 3); !errors.Is(err, ErrTooFewPeers) {
		t.Fatalf("SetReplicas 3 on one server: %v, want ErrTooFewPeers", err)
	}
}

// TestKVCluster runs the store on a 3-node cluster: buckets start R1 and are
// raised to R3 in place, writes through one node are read at once through
// another, and concurrent writers on two nodes never lose each other's work.
func TestKVCluster(t *testing.T) {
	c := newTestCluster(t, 3, false)
	ctx := testCtx(t)
	jsA, jsC := c.js(t, 0), c.js(t, 2)

	// Start as a single node would: R1, with state and a blob in it.
	a := openTestKV(t, jsA, KVOptions{Replicas: 1})
	blobsA, err := NewObjectBlobs(ctx, jsA, 1)
	must(t, "NewObjectBlobs", err)
	blob := []byte("a blob written before the cluster went R3")
	blobSum := sha256Hex(blob)
	must(t, "blob put", blobsA.Put(ctx, blobSum, blob))

	// Concurrent first admins on two nodes: exactly one wins.
	c0 := openTestKV(t, jsC, KVOptions{Replicas: 1})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*KV{a, c0} {
		wg.Go(func() { errs[i] = s.CreateFirstAdmin(ctx, member(fmt.Sprintf("admin%d", i), RoleAdmin)) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrExists) {
		t.Fatalf("concurrent CreateFirstAdmin: %v / %v, want exactly one ErrExists", errs[0], errs[1])
	}
	admin := "admin0"
	if errs[0] != nil {
		admin = "admin1"
	}

	t.Run("SetReplicas 1 to 3", func(t *testing.T) {
		must(t, "SetReplicas", a.SetReplicas(ctx, 3))
		if n, err := c0.Replicas(ctx); err != nil || n != 3 {
			t.Fatalf("Replicas through C = %d, %v", n, err)
		}
		for _, name := range append(slices.Clone(kvBuckets), "OBJ_"+ObjectBlobsBucket) {
			if !strings.HasPrefix(name, "OBJ_") {
				name = "KV_" + name
			}
			st, err := jsC.Stream(ctx, name)
			must(t, name, err)
			info := st.CachedInfo()
			if info.Config.Replicas != 3 || !replicasCurrent(info, 3) {
				t.Fatalf("%s: replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
			}
		}
		// The state from R1 days is all still there.
		if has, err := c0.HasAdmin(ctx); err != nil || !has {
			t.Fatalf("HasAdmin through C after SetReplicas: %v, %v", has, err)
		}
		blobsC, err := NewObjectBlobs(ctx, jsC, 3)
		must(t, "NewObjectBlobs C", err)
		rc, size, err := blobsC.Open(ctx, blobSum)
		must(t, "blob open through C", err)
		defer rc.Close()
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		if size != int64(len(blob)) || !bytes.Equal(buf.Bytes(), blob) {
			t.Fatalf("blob through C: %d bytes %q", size, buf.Bytes())
		}
	})

	// A second binding through node C now, as another daemon would.
	cs := openTestKV(t, jsC, KVOptions{Replicas: 3})

	t.Run("write on A, read on C at once", func(t *testing.T) {
		room := ids.NewRoomID()
		must(t, "room", a.CreateRoom(ctx, Room{ID: room, Name: "r", Owner: admin, KeyEpoch: 1}))
		for i := range 20 {
			h := fmt.Sprintf("reader%d", i)
			must(t, "create on A", a.CreateMember(ctx, member(h, RoleMember)))
			if _, err := cs.Member(ctx, h); err != nil {
				t.Fatalf("member %s created on A, not yet on C: %v", h, err)
			}
			must(t, "add on A", a.AddRoomMember(ctx, room, h))
			if r, err := cs.Room(ctx, room); err != nil || !r.Has(h) {
				t.Fatalf("member %s added on A, not in the room on C: %v", h, err)
			}
			must(t, "key on A", a.PutSealedKey(ctx, SealedKey{Room: room, Handle: h, Epoch: int64(1 + i), Sealed: []byte(h)}))
			if k, err := cs.SealedKey(ctx, room, h); err != nil || string(k.Sealed) != h {
				t.Fatalf("key of %s put on A, not on C: %v", h, err)
			}
			if _, err := a.RemoveRoomMember(ctx, room, h); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.SealedKey(ctx, room, h); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s removed on A, key still served on C: %v", h, err)
			}
		}
		leader := c.streamLeader("KV_" + BucketRooms)
		t.Logf("rooms stream leader: %s (reads went through n2)", leader)
	})

	t.Run("concurrent AddRoomMember on two nodes all land", func(t *testing.T) {
		room := ids.NewRoomID()
		must(t, "room", a.CreateRoom(ctx, Room{ID: room, Name: "busy", Owner: admin, KeyEpoch: 1}))
		const n = 16
		for i := range n {
			must(t, "member", a.CreateMember(ctx, member(fmt.Sprintf("m%d", i), RoleMember)))
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			s := a
			if i%2 == 1 {
				s = cs
			}
			wg.Go(func() { errs[i] = s.AddRoomMember(ctx, room, fmt.Sprintf("m%d", i)) })
		}
		wg.Wait()
		must(t, "AddRoomMember", errors.Join(errs...))
		r, err := a.Room(ctx, room)
		must(t, "Room", err)
		if len(r.Members) != n+1 {
			t.Fatalf("room has %d members after %d concurrent adds: %v", len(r.Members), n, r.Members)
		}
	})

	t.Run("UseNonce on two nodes: exactly one wins", func(t *testing.T) {
		exp := time.Now().Add(time.Minute)
		for i := range 20 {
			key := fmt.Sprintf("alice:race%d", i)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j, s := range []*KV{a, cs} {
				wg.Go(func() { errs[j] = s.UseNonce(ctx, key, exp) })
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
				} else if !errors.Is(err, ErrReplay) {
					t.Fatalf("UseNonce %s: %v", key, err)
				}
			}
			if ok != 1 {
				t.Fatalf("UseNonce %s from two nodes: %d succeeded, want 1 (%v)", key, ok, errs)
			}
		}
	})

	t.Run("CreateMember race for one signing key", func(t *testing.T) {
		x, y := member("twin-x", RoleMember), member("twin-y", RoleMember)
		y.SignPub = x.SignPub
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = a.CreateMember(ctx, x) })
		wg.Go(func() { errs[1] = cs.CreateMember(ctx, y) })
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two members with one signing key: %v / %v", errs[0], errs[1])
		}
		all, err := cs.AllMembers(ctx)
		must(t, "AllMembers", err)
		n := 0
		for _, m := range all {
			if m.SignPub == x.SignPub {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d members hold one signing key", n)
		}
	})
}

// TestKVCreateOverDeletedKey: create writes a key that has no message, or
// only the marker of a delete or purge (a rolled-back create, a removed
// sealed key), and refuses one that holds a value, as nats.go's Create
// does, but reading the key from the stream leader instead of a direct
// get (see create).
func TestKVCreateOverDeletedKey(t *testing.T) {
	ctx := testCtx(t)
	s := openTestKV(t, testConnect(t, testJetStream(t)), KVOptions{Replicas: 1})
	get := func(key string) string {
		e, err := s.get(ctx, BucketMembers, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return string(e.value)
	}
	if _, err := s.create(ctx, s.members, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.create(ctx, s.members, "k", []byte("two")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("create over a value: %v, want ErrKeyExists", err)
	}
	if v := get("k"); v != "one" {
		t.Fatalf("k = %q after a refused create, want one", v)
	}
	for _, gone := range []func() error{
		func() error { return s.members.Delete(ctx, "k") },
		func() error { return s.members.Purge(ctx, "k") },
	} {
		if err := gone(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.create(ctx, s.members, "k", []byte("again")); err != nil {
			t.Fatalf("create over a removed key: %v", err)
		}
		if v := get("k"); v != "again" {
			t.Fatalf("k = %q, want again", v)
		}
	}
}
