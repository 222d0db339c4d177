package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityFile(t *testing.T) {
	id, err := GenerateIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIdentity(id.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if back.Handle != "alice" || back.SignPub() != id.SignPub() || back.Recipient() != id.Recipient() {
		t.Fatal("identity does not survive Marshal and Parse")
	}

	// A malformed secret is reported without being quoted back.
	seed, _ := id.Sign.Seed()
	broken := strings.Replace(string(id.Marshal()), string(seed), string(seed[:len(seed)-3])+"!!!", 1)
	_, err = ParseIdentity([]byte(broken))
	if err == nil || strings.Contains(err.Error(), string(seed[:20])) {
		t.Fatalf("malformed seed: %v", err)
	}
	brokenAge := strings.Replace(string(id.Marshal()), id.Age.String(), id.Age.String()+"x", 1)
	_, err = ParseIdentity([]byte(brokenAge))
	if err == nil || strings.Contains(err.Error(), id.Age.String()[16:40]) {
		t.Fatalf("malformed age identity: %v", err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "id")
	os.WriteFile(file, id.Marshal(), 0o644)
	if _, err := LoadIdentity(file); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("LoadIdentity of a 0644 file: %v", err)
	}
	os.Chmod(file, 0o600)
	if _, err := LoadIdentity(file); err != nil {
		t.Fatal(err)
	}
}

func TestMessageSealing(t *testing.T) {
	k := NewRoomKey("0123456789abcdef", 3)
	subject := Subject(k.Room, "chat")
	open := func(mutate func(*RoomKey, *[]byte, *string, *string)) error {
		msg := SealMessage(k, "alice", subject, []byte("hello"))
		key := k
		from := msg.Header.Get(HeaderFrom)
		mutate(&key, &msg.Data, &msg.Subject, &from)
		msg.Header.Set(HeaderFrom, from)
		got, text, err := OpenMessage(key, msg)
		if err == nil && (got != "alice" || string(text) != "hello") {
			t.Fatalf("opened %q from %q", text, got)
		}
		return err
	}
	if err := open(func(*RoomKey, *[]byte, *string, *string) {}); err != nil {
		t.Fatalf("a sealed message does not open: %v", err)
	}
	cases := map[string]func(*RoomKey, *[]byte, *string, *string){
		"flipped byte":     func(_ *RoomKey, d *[]byte, _, _ *string) { (*d)[len(*d)-1] ^= 1 },
		"moved to a topic": func(_ *RoomKey, _ *[]byte, s, _ *string) { *s = Subject(k.Room, "other") },
		"relabelled":       func(_ *RoomKey, _ *[]byte, _, f *string) { *f = "mallory" },
		"another key":      func(key *RoomKey, _ *[]byte, _, _ *string) { key.Key[0] ^= 1 },
	}
	for name, mutate := range cases {
		if err := open(mutate); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	err := open(func(key *RoomKey, _ *[]byte, _, _ *string) { key.Epoch = 4 })
	if !errors.Is(err, ErrEpoch) {
		t.Errorf("other epoch: %v; want ErrEpoch", err)
	}
}

func TestRoomKeySealing(t *testing.T) {
	bob, _ := GenerateIdentity("bob")
	eve, _ := GenerateIdentity("eve")
	k := NewRoomKey("0123456789abcdef", 1)
	sealed, err := k.Seal(bob.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	got, err := bob.OpenRoomKey(SealedKey{Room: k.Room, Epoch: 1, Sealed: sealed})
	if err != nil || got != k {
		t.Fatalf("bob opens %v, %v", got, err)
	}
	if _, err := eve.OpenRoomKey(SealedKey{Room: k.Room, Epoch: 1, Sealed: sealed}); err == nil {
		t.Fatal("eve opened a key sealed to bob")
	}
}
