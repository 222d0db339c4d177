package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
)

// TestReplayAfterSIGKILL: every signed request answered before a hard kill
// (no shutdown, no WAL checkpoint) is refused as a replay after the restart.
// That is the nonce log's promise: a nonce is on disk before its request is
// answered, group commit or not.
func TestReplayAfterSIGKILL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	id, err := client.GenerateIdentity("alice")
	if err != nil {
		t.Fatal(err)
	}
	selfVouch, err := id.SelfVouch()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"bootstrap", "--state-dir", dir, "--handle", "alice", "--sign-pub", id.SignPub(), "--age-recipient", id.Recipient(), "--vouch", selfVouch}, &out, &out, os.Getenv); code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", code, out.String())
	}
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	cmd, stderr := startMembershipd(t, dir, port)
	// Answered concurrently, so they share group commits.
	const n = 64
	auths := make([]string, n)
	var wg sync.WaitGroup
	for i := range auths {
		auths[i], err = reqsign.Sign(id.Sign, "alice", "GET", "/v1/rooms", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if code, c := getRooms(base, auths[i]); code != 200 {
				t.Errorf("request %d: %d %s", i, code, c)
			}
		})
	}
	wg.Wait()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if t.Failed() {
		t.Fatalf("log:\n%s", stderr)
	}

	startMembershipd(t, dir, port)
	for i, a := range auths {
		if code, c := getRooms(base, a); code != 401 || c != "replayed_nonce" {
			t.Errorf("request %d replayed after SIGKILL: %d %s; want 401 replayed_nonce", i, code, c)
		}
	}
	fresh, _ := reqsign.Sign(id.Sign, "alice", "GET", "/v1/rooms", nil, time.Now())
	if code, c := getRooms(base, fresh); code != 200 {
		t.Errorf("a fresh request after the restart: %d %s", code, c)
	}
}

func getRooms(base, auth string) (int, string) {
	req, _ := http.NewRequest("GET", base+"/v1/rooms", nil)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var e struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code
}
