package membershipd

import (
	"context"
	"errors"
	"testing"

	"github.com/unibus/unibus/client"
)

// TestRekeyIsFreshKeyMaterial: after a member leaves, the rekey makes a new
// key, not the old one under a new epoch number, so the removed member's
// copy of the old key opens nothing sealed after it, even relabelled with
// the old epoch.
func TestRekeyIsFreshKeyMaterial(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	room, oldKey, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	bobKey, err := cp.bob.RoomKey(ctx, room.ID)
	if err != nil || bobKey != oldKey {
		t.Fatalf("bob's key before the removal: %v (same as alice's: %v)", err, bobKey == oldKey)
	}
	_, newKey, err := cp.alice.RemoveMemberAndRekey(ctx, room.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if newKey.Epoch != oldKey.Epoch+1 {
		t.Fatalf("epoch after rekey = %d; want %d", newKey.Epoch, oldKey.Epoch+1)
	}
	if newKey.Key == oldKey.Key {
		t.Fatal("the rekey reused the old key material")
	}
	if got, err := cp.alice.RoomKey(ctx, room.ID); err != nil || got != newKey {
		t.Fatalf("alice's stored key after rekey: %v (is the new key: %v)", err, got == newKey)
	}

	subject := client.Subject(room.ID, "chat")
	msg := client.SealMessage(newKey, "alice", subject, []byte("after bob left"))
	if _, _, err := client.OpenMessage(bobKey, msg); !errors.Is(err, client.ErrEpoch) {
		t.Fatalf("bob's old key on a new-epoch message: %v; want ErrEpoch", err)
	}
	// Relabelled with the old epoch, it still does not open: the key
	// itself is new.
	forged := client.SealMessage(newKey, "alice", subject, []byte("after bob left"))
	forged.Header.Set(client.HeaderEpoch, "1")
	if _, _, err := client.OpenMessage(bobKey, forged); err == nil {
		t.Fatal("bob's old key opened a message sealed after the rekey")
	}
	if _, err := cp.bob.RoomKey(ctx, room.ID); err == nil {
		t.Fatal("bob still gets a sealed key of the room he left")
	}
}
