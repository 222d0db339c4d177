package store

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/internal/ids"
)

// TestMigrate copies a SQLite state into KV, then proves the copy reads the
// same through the Store interface, a second run changes nothing, a handle
// KV already has with another key is reported, not overwritten, and a blob
// is copied only whole and only with its room.
func TestMigrate(t *testing.T) {
	ctx := testCtx(t)
	from := openTestSQLite(t)
	for _, m := range []Member{member("alice", RoleAdmin), member("bob", RoleMember), member("carol", RoleMember), member("dave", RoleMember)} {
		must(t, "member "+m.Handle, from.CreateMember(ctx, m))
	}
	ops, dev := ids.NewRoomID(), ids.NewRoomID()
	must(t, "ops", from.CreateRoom(ctx, Room{ID: ops, Name: "ops", Owner: "alice", KeyEpoch: 1, Created: time.Unix(1767225600, 0)}))
	must(t, "dev", from.CreateRoom(ctx, Room{ID: dev, Name: "dev", Owner: "carol", KeyEpoch: 1, Created: time.Unix(1767225700, 0)}))
	must(t, "bob in ops", from.AddRoomMember(ctx, ops, "bob"))
	must(t, "carol in ops", from.AddRoomMember(ctx, ops, "carol"))
	must(t, "alice's key", from.PutSealedKey(ctx, SealedKey{Room: ops, Handle: "alice", Epoch: 1, Sealed: []byte("a1")}))
	must(t, "carol's key", from.PutSealedKey(ctx, SealedKey{Room: ops, Handle: "carol", Epoch: 1, Sealed: []byte("c1")}))
	_, err := from.RemoveRoomMember(ctx, ops, "bob") // epoch 2; alice and carol keep epoch-1 keys
	must(t, "remove bob", err)
	must(t, "alice's new key", from.PutSealedKey(ctx, SealedKey{Room: ops, Handle: "alice", Epoch: 2, Sealed: []byte("a2")}))
	must(t, "dave in dev", from.AddRoomMember(ctx, dev, "dave"))
	must(t, "dave's key", from.PutSealedKey(ctx, SealedKey{Room: dev, Handle: "dave", Epoch: 1, Sealed: []byte("d1")}))

	// Blobs: one in ops, one in dev (whose room will not be copied), and
	// one ops lists whose file is gone.
	blob := func(room, content string, keepFile bool) string {
		d := sha256.Sum256([]byte(content))
		sum := hex.EncodeToString(d[:])
		if keepFile {
			must(t, "put blob", from.Blobs().Put(ctx, sum, []byte(content)))
		}
		must(t, "index blob", from.AddBlob(ctx, sum, room, int64(len(content))))
		return sum
	}
	opsBlob, _, lostBlob := blob(ops, "ops runbook", true), blob(dev, "dev notes", true), blob(ops, "lost", false)
	badBlob := blob(ops, "bit rot", false)
	must(t, "corrupt blob", from.Blobs().Put(ctx, badBlob, []byte("bit rod")))

	js := testConnect(t, testJetStream(t))
	to := openTestKV(t, js, KVOptions{})
	toBlobs, err := NewObjectBlobs(ctx, js, 1)
	must(t, "object store", err)
	// KV already knows a different dave.
	otherDave := member("dave", RoleMember)
	otherDave.SignPub = "UOTHERDAVE"
	must(t, "other dave", to.CreateMember(ctx, otherDave))

	sum, err := Migrate(ctx, from, to, toBlobs)
	must(t, "Migrate", err)
	want := MigrateSummary{
		Members:    MigrateCounts{Created: 3, Conflicting: 1},
		Rooms:      MigrateCounts{Created: 1, Conflicting: 1},
		SealedKeys: MigrateCounts{Created: 2},
		Blobs:      MigrateCounts{Created: 1, Conflicting: 2},
	}
	if sum.Members != want.Members || sum.Rooms != want.Rooms || sum.SealedKeys != want.SealedKeys || sum.Blobs != want.Blobs {
		t.Fatalf("first run: %v, want %v", sum, want)
	}
	// Blobs go by room, then digest.
	first, second := lostBlob+" of room "+ops+": missing from ", badBlob+" of room "+ops+": the file in "
	if badBlob < lostBlob {
		first, second = second, first
	}
	if len(sum.Conflicts) != 4 || !strings.Contains(sum.Conflicts[0], "member dave: KV has a different signing key") || !strings.Contains(sum.Conflicts[1], "room "+dev) ||
		!strings.Contains(sum.Conflicts[2], "blob "+first) || !strings.Contains(sum.Conflicts[3], "blob "+second) {
		t.Fatalf("conflicts: %q", sum.Conflicts)
	}
	// The copied blob reads back whole; the others are not listed.
	if in, _ := to.BlobInRoom(ctx, opsBlob, ops); !in {
		t.Fatal("ops blob not listed in KV")
	}
	r, size, err := toBlobs.Open(ctx, opsBlob)
	must(t, "open ops blob", err)
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "ops runbook" || size != int64(len(got)) {
		t.Fatalf("ops blob in the object store: %q (%d bytes)", got, size)
	}
	for _, b := range []string{lostBlob, badBlob} {
		if in, _ := to.BlobInRoom(ctx, b, ops); in {
			t.Fatalf("blob %s, missing or corrupt in the state dir, is listed in KV", b)
		}
	}
	if m, _ := to.Member(ctx, "dave"); m.SignPub != "UOTHERDAVE" {
		t.Fatalf("KV's dave was overwritten: %+v", m)
	}

	// The copy answers as SQLite does.
	if has, _ := to.HasAdmin(ctx); !has {
		t.Fatal("no admin after migration")
	}
	wantOps, _ := from.Room(ctx, ops)
	gotOps, err := to.Room(ctx, ops)
	must(t, "Room ops", err)
	if !reflect.DeepEqual(wantOps, gotOps) {
		t.Fatalf("room ops: KV %+v, SQLite %+v", gotOps, wantOps)
	}
	for _, h := range []string{"alice", "carol"} {
		w, _ := from.SealedKey(ctx, ops, h)
		g, err := to.SealedKey(ctx, ops, h)
		must(t, "SealedKey "+h, err)
		if !reflect.DeepEqual(w, g) {
			t.Fatalf("sealed key of %s: KV %+v, SQLite %+v", h, g, w)
		}
	}
	for _, h := range []string{"alice", "bob", "carol"} {
		w, _ := from.Member(ctx, h)
		g, _ := to.Member(ctx, h)
		if w != g {
			t.Fatalf("member %s: KV %+v, SQLite %+v", h, g, w)
		}
	}

	again, err := Migrate(ctx, from, to, toBlobs)
	must(t, "Migrate again", err)
	if again.Changed() || again.Members.Present != 3 || again.Rooms.Present != 1 || again.SealedKeys.Present != 2 || again.Blobs.Present != 1 {
		t.Fatalf("second run changed something: %v", again)
	}
	if !strings.Contains(again.String(), "3 already present") {
		t.Fatalf("second run summary: %s", again)
	}
}
