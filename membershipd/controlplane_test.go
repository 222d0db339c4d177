package membershipd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
)

// controlPlane is a daemon with --bus-auth enforce, a bootstrapped admin
// "alice", and members "bob" and "carol" that alice added.
type controlPlane struct {
	d                 *Daemon
	cfg               Config
	alice, bob, carol *client.Client
}

func newControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.BusAuth = BusAuthEnforce
	aliceID := mustIdentity(t, "alice")
	if _, err := Bootstrap(ctx, cfg.StateDir, "alice", aliceID.SignPub(), aliceID.Recipient(), selfVouch(t, aliceID)); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	d := startDaemon(t, cfg)
	base := "http://" + d.HTTPAddr()
	cp := &controlPlane{d: d, cfg: cfg, alice: client.New(base, aliceID)}
	cp.bob = cp.addMember(t, "bob")
	cp.carol = cp.addMember(t, "carol")
	return cp
}

func (cp *controlPlane) addMember(t testing.TB, handle string) *client.Client {
	t.Helper()
	id := mustIdentity(t, handle)
	if _, err := cp.alice.CreateMember(context.Background(), client.Member{Handle: handle, Role: "member", SignPub: id.SignPub(), AgeRecipient: id.Recipient()}); err != nil {
		t.Fatalf("add member %s: %v", handle, err)
	}
	return client.New("http://"+cp.d.HTTPAddr(), id)
}

// bus connects c to the embedded NATS as its member, recording async errors
// (permission violations arrive that way).
func (cp *controlPlane) bus(t *testing.T, c *client.Client) (*nats.Conn, *asyncErrors) {
	t.Helper()
	errs := &asyncErrors{}
	opts := append(c.Identity().NATSOptions(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs.add(err) }))
	nc, err := nats.Connect(cp.d.NATSURL(), opts...)
	if err != nil {
		t.Fatalf("%s connects to the bus: %v", c.Identity().Handle, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

type asyncErrors struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrors) add(err error) { a.mu.Lock(); a.errs = append(a.errs, err); a.mu.Unlock() }
func (a *asyncErrors) has(substr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.errs {
		if strings.Contains(strings.ToLower(e.Error()), strings.ToLower(substr)) {
			return true
		}
	}
	return false
}

func mustIdentity(t testing.TB, handle string) *client.Identity {
	t.Helper()
	id, err := client.GenerateIdentity(handle)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func apiStatus(err error) (int, string) {
	var e *client.APIError
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, ""
}

// TestFullStory is the control plane end to end: bootstrap an admin, make a
// room, add a member, share the sealed key, exchange an encrypted message on
// the bus, and pass a blob.
func TestFullStory(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()

	room, aliceKey, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	bobKey, err := cp.bob.RoomKey(ctx, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bobKey != aliceKey {
		t.Fatal("bob opened a different room key than alice made")
	}
	// The server holds only sealed keys.
	sk, err := cp.bob.SealedKey(ctx, room.ID, "bob")
	if err != nil || bytes.Contains(sk.Sealed, aliceKey.Key[:]) {
		t.Fatalf("sealed key: %v (or it contains the plaintext key)", err)
	}
	rooms, err := cp.bob.Rooms(ctx)
	if err != nil || len(rooms) != 1 || rooms[0].ID != room.ID {
		t.Fatalf("bob's rooms = %+v, %v", rooms, err)
	}
	if rooms, _ := cp.carol.Rooms(ctx); len(rooms) != 0 {
		t.Fatalf("carol sees rooms she is not in: %+v", rooms)
	}

	// Encrypted message on the bus, with ACLs in force.
	subject := client.Subject(room.ID, "chat")
	bobNC, _ := cp.bus(t, cp.bob)
	sub, err := bobNC.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	bobNC.Flush()
	aliceNC, _ := cp.bus(t, cp.alice)
	if err := aliceNC.PublishMsg(client.SealMessage(aliceKey, "alice", subject, []byte("deploy at noon"))); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("bob receives: %v", err)
	}
	if bytes.Contains(msg.Data, []byte("deploy at noon")) {
		t.Fatal("message travels in plaintext")
	}
	from, text, err := client.OpenMessage(bobKey, msg)
	if err != nil || from != "alice" || string(text) != "deploy at noon" {
		t.Fatalf("bob opens %q from %q, %v", text, from, err)
	}

	// Blob up and down.
	blob := bytes.Repeat([]byte("unibus "), 1000)
	blobID, err := cp.alice.PutBlob(ctx, room.ID, blob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cp.bob.Blob(ctx, room.ID, blobID)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("bob downloads the blob: %d bytes, %v", len(got), err)
	}

	var h health
	getJSON(t, endpoint(cp.d, "/healthz"), &h)
	if h.Posture.BusAuth != "enforce" || !h.Posture.ACL {
		t.Errorf("posture %+v; want bus_auth enforce with acl true", h.Posture)
	}
}

func TestBootstrapOnlyOnce(t *testing.T) {
	cp := newControlPlane(t)
	eve := mustIdentity(t, "eve")
	_, err := Bootstrap(context.Background(), cp.cfg.StateDir, "eve", eve.SignPub(), eve.Recipient(), selfVouch(t, eve))
	if err == nil || !strings.Contains(err.Error(), "already has an admin") {
		t.Fatalf("second bootstrap: %v; want a refusal", err)
	}
	if _, err := cp.alice.Member(context.Background(), "eve"); err == nil {
		t.Fatal("refused bootstrap still created the member")
	}
}

// signedRequest builds a raw request signed by id with the given timestamp.
func signedRequest(t *testing.T, d *Daemon, id *client.Identity, method, path, contentType string, body []byte, now time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	auth, err := reqsign.Sign(id.Sign, id.Handle, method, req.URL.RequestURI(), body, now)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	return req
}

// send does req (which may be sent again: its body is re-read) and returns
// the status and error code.
func send(t *testing.T, req *http.Request, body []byte) (int, string) {
	t.Helper()
	req.Body = http.NoBody
	if body != nil {
		req.Body = readCloser(body)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	jsonDecodeTee(resp, new(strings.Builder), &e)
	return resp.StatusCode, e.Code
}

func TestSignedRequestRefusals(t *testing.T) {
	cp := newControlPlane(t)
	bob := cp.bob.Identity()
	now := time.Now()

	// A replayed request: same signature, same nonce.
	req := signedRequest(t, cp.d, bob, "GET", "/v1/rooms", "", nil, now)
	if code, _ := send(t, req, nil); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	if code, c := send(t, req, nil); code != 401 || c != "replayed_nonce" {
		t.Fatalf("replay: %d %s; want 401 replayed_nonce", code, c)
	}
	// The nonce table survives a restart.
	replayAfterRestart := signedRequest(t, cp.d, bob, "GET", "/v1/rooms", "", nil, now)
	send(t, replayAfterRestart, nil)
	cp.d.Shutdown()
	cfg := cp.cfg
	d2 := startDaemon(t, cfg)
	replayAfterRestart.URL.Host = d2.HTTPAddr()
	if code, c := send(t, replayAfterRestart, nil); code != 401 || c != "replayed_nonce" {
		t.Fatalf("replay after restart: %d %s; want 401 replayed_nonce", code, c)
	}

	tests := []struct {
		name string
		req  *http.Request
		code string
	}{
		{"stale timestamp", signedRequest(t, d2, bob, "GET", "/v1/rooms", "", nil, now.Add(-2*time.Minute)), "stale_timestamp"},
		{"future timestamp", signedRequest(t, d2, bob, "GET", "/v1/rooms", "", nil, now.Add(2*time.Minute)), "stale_timestamp"},
		{"forged signature", signedRequest(t, d2, &client.Identity{Handle: "bob", Sign: mustIdentity(t, "x").Sign}, "GET", "/v1/rooms", "", nil, now), "bad_signature"},
		{"unknown handle", signedRequest(t, d2, mustIdentity(t, "mallory"), "GET", "/v1/rooms", "", nil, now), "unknown_handle"},
	}
	// A signature for one path does not work on another.
	moved := signedRequest(t, d2, bob, "GET", "/v1/rooms", "", nil, now)
	moved.URL.Path = "/v1/members/alice"
	tests = append(tests, struct {
		name string
		req  *http.Request
		code string
	}{"signature for another path", moved, "bad_signature"})
	unsigned, _ := http.NewRequest("GET", "http://"+d2.HTTPAddr()+"/v1/rooms", nil)
	tests = append(tests, struct {
		name string
		req  *http.Request
		code string
	}{"unsigned", unsigned, "unauthenticated"})
	garbled := signedRequest(t, d2, bob, "GET", "/v1/rooms", "", nil, now)
	garbled.Header.Set("Authorization", reqsign.Scheme+" handle=bob,ts=1")
	tests = append(tests, struct {
		name string
		req  *http.Request
		code string
	}{"malformed header", garbled, "bad_authorization"})
	for _, tt := range tests {
		if code, c := send(t, tt.req, nil); code != 401 || c != tt.code {
			t.Errorf("%s: %d %s; want 401 %s", tt.name, code, c, tt.code)
		}
	}
}

// TestOtherRoomsAreClosed: a member cannot read another room's sealed key
// or blob, nor another member's sealed key in its own room.
func TestOtherRoomsAreClosed(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	blobID, err := cp.alice.PutBlob(ctx, room.ID, []byte("secret plans"))
	if err != nil {
		t.Fatal(err)
	}
	carolRoom, _, err := cp.carol.CreateRoomWithKey(ctx, "carol's")
	if err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name string
		err  error
		want int
	}{
		{"carol reads alice's sealed key", second(cp.carol.SealedKey(ctx, room.ID, "alice")), 404},
		{"carol reads her key in a room she is not in", second(cp.carol.SealedKey(ctx, room.ID, "carol")), 404},
		{"bob reads alice's sealed key in his own room", second(cp.bob.SealedKey(ctx, room.ID, "alice")), 403},
		{"carol reads the room", second(cp.carol.Room(ctx, room.ID)), 404},
		{"carol downloads the room's blob", second(cp.carol.Blob(ctx, room.ID, blobID)), 404},
		{"carol downloads it through her own room", second(cp.carol.Blob(ctx, carolRoom.ID, blobID)), 404},
		{"carol uploads into the room", second(cp.carol.PutBlob(ctx, room.ID, []byte("x"))), 404},
		{"bob adds carol (not owner)", second(cp.bob.AddRoomMember(ctx, room.ID, "carol")), 403},
		{"bob adds a member (not admin)", second(cp.bob.CreateMember(ctx, client.Member{Handle: "dave", SignPub: mustIdentity(t, "d").SignPub(), AgeRecipient: mustIdentity(t, "d").Recipient()})), 403},
		{"carol seals a key into the room", cp.carol.PutSealedKey(ctx, room.ID, "carol", 1, []byte("age-encryption.org/v1\nx")), 404},
	}
	for _, c := range checks {
		if got, _ := apiStatus(c.err); got != c.want {
			t.Errorf("%s: %v; want status %d", c.name, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestBusACLsAndLiveMembership: under enforce a member subscribing outside
// its rooms gets a permissions violation while its own room works, and a
// membership change applies to connected clients without a restart and
// without dropping anyone.
func TestBusACLsAndLiveMembership(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	ops, opsKey, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, ops.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	carolRoom, carolKey, err := cp.carol.CreateRoomWithKey(ctx, "carol's")
	if err != nil {
		t.Fatal(err)
	}
	opsSubject := client.Subject(ops.ID, "chat")

	// Carol may not subscribe to ops.
	carolNC, carolErrs := cp.bus(t, cp.carol)
	if _, err := carolNC.SubscribeSync(opsSubject); err != nil {
		t.Fatal(err)
	}
	carolNC.Flush()
	waitFor(t, "carol's permissions violation", 5*time.Second, func() bool { return carolErrs.has("permissions violation") })
	// Her own room works on the same connection.
	own, err := carolNC.SubscribeSync(client.Subject(carolRoom.ID, "notes"))
	if err != nil {
		t.Fatal(err)
	}
	carolNC.Flush()
	if err := carolNC.PublishMsg(client.SealMessage(carolKey, "carol", client.Subject(carolRoom.ID, "notes"), []byte("mine"))); err != nil {
		t.Fatal(err)
	}
	if m, err := own.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("carol in her own room: %v", err)
	} else if _, text, err := client.OpenMessage(carolKey, m); err != nil || string(text) != "mine" {
		t.Fatalf("carol opens %q, %v", text, err)
	}
	// Nor may she publish to ops, nor touch JetStream's API.
	carolNC.Publish(opsSubject, []byte("x"))
	carolNC.Flush()
	waitFor(t, "publish violation", 5*time.Second, func() bool { return carolErrs.has("publish") })

	// Bob listens on ops; alice publishes.
	bobNC, _ := cp.bus(t, cp.bob)
	bobSub, _ := bobNC.SubscribeSync(opsSubject)
	bobNC.Flush()
	aliceNC, _ := cp.bus(t, cp.alice)
	publish := func(text string) {
		t.Helper()
		if err := aliceNC.PublishMsg(client.SealMessage(opsKey, "alice", opsSubject, []byte(text))); err != nil {
			t.Fatal(err)
		}
		aliceNC.Flush()
	}
	publish("one")
	if _, err := bobSub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("bob before removal: %v", err)
	}

	// Live: bob leaves ops, carol joins. Nobody reconnects.
	if _, _, err := cp.alice.RemoveMemberAndRekey(ctx, ops.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.alice.AddMemberWithKey(ctx, ops.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if !bobNC.IsConnected() || !carolNC.IsConnected() || !aliceNC.IsConnected() {
		t.Fatal("a membership change dropped a client")
	}
	newKey, err := cp.carol.RoomKey(ctx, ops.ID)
	if err != nil {
		t.Fatal(err)
	}
	if newKey.Epoch != opsKey.Epoch+1 {
		t.Fatalf("key epoch after removal = %d; want %d", newKey.Epoch, opsKey.Epoch+1)
	}
	carolSub, err := carolNC.SubscribeSync(opsSubject)
	if err != nil {
		t.Fatal(err)
	}
	carolNC.Flush()
	aliceKey, err := cp.alice.RoomKey(ctx, ops.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := aliceNC.PublishMsg(client.SealMessage(aliceKey, "alice", opsSubject, []byte("two"))); err != nil {
		t.Fatal(err)
	}
	aliceNC.Flush()
	m, err := carolSub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("carol after joining: %v", err)
	}
	if _, text, err := client.OpenMessage(newKey, m); err != nil || string(text) != "two" {
		t.Fatalf("carol opens %q, %v", text, err)
	}
	if m, err := bobSub.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("bob still receives ops after removal: %q", m.Data)
	}
	// And bob's old key no longer opens new messages.
	if _, _, err := client.OpenMessage(opsKey, m); err == nil {
		t.Fatal("old key opens a message of the new epoch")
	}
	if _, err := cp.bob.SealedKey(ctx, ops.ID, "bob"); err == nil {
		t.Fatal("removed member still has a sealed key")
	}
}

// TestBadRequestsAre4xx: malformed bodies, wrong content types, oversized
// uploads and bad ids get a 4xx JSON error and leave nothing behind.
func TestBadRequestsAre4xx(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	alice := cp.alice.Identity()
	big := bytes.Repeat([]byte("x"), 17<<20)
	bigSum := sha256.Sum256(big)
	wrongSum := sha256.Sum256([]byte("other"))
	tests := []struct {
		name, method, path, ctype string
		body                      []byte
		status                    int
	}{
		{"not json", "POST", "/v1/rooms", "application/json", []byte("{"), 400},
		{"unknown field", "POST", "/v1/rooms", "application/json", []byte(`{"name":"a","admin":true}`), 400},
		{"two values", "POST", "/v1/rooms", "application/json", []byte(`{"name":"a"}{"name":"b"}`), 400},
		{"empty name", "POST", "/v1/rooms", "application/json", []byte(`{"name":"  "}`), 400},
		{"control chars in name", "POST", "/v1/rooms", "application/json", []byte(`{"name":"a\u0007b"}`), 400},
		{"wrong content type", "POST", "/v1/rooms", "text/plain", []byte(`{"name":"a"}`), 415},
		{"json too large", "POST", "/v1/rooms", "application/json", bytes.Repeat([]byte(" "), 65<<10), 413},
		{"bad member handle", "POST", "/v1/members", "application/json", []byte(`{"handle":"../etc","sign_pub":"x","age_recipient":"y"}`), 400},
		{"bad sign_pub", "POST", "/v1/members", "application/json", []byte(`{"handle":"dave","sign_pub":"UNOPE","age_recipient":"age1x"}`), 400},
		{"bad role", "POST", "/v1/members", "application/json", []byte(`{"handle":"dave","role":"root"}`), 400},
		{"bad room id", "GET", "/v1/rooms/..%2f..%2fetc", "", nil, 400},
		{"bad sealed key", "PUT", "/v1/rooms/" + room.ID + "/keys/alice", "application/json", []byte(`{"epoch":1,"sealed":"bm90IGFnZQ=="}`), 400},
		{"stale epoch", "PUT", "/v1/rooms/" + room.ID + "/keys/alice", "application/json", []byte(`{"epoch":7,"sealed":"YWdlLWVuY3J5cHRpb24ub3JnL3YxCng="}`), 409},
		{"key for a non-member", "PUT", "/v1/rooms/" + room.ID + "/keys/bob", "application/json", []byte(`{"epoch":1,"sealed":"YWdlLWVuY3J5cHRpb24ub3JnL3YxCng="}`), 409},
		{"blob id not a digest", "PUT", "/v1/blobs/NOT-A-DIGEST?room=" + room.ID, "application/octet-stream", []byte("x"), 400},
		{"blob digest mismatch", "PUT", "/v1/blobs/" + hex.EncodeToString(wrongSum[:]) + "?room=" + room.ID, "application/octet-stream", []byte("x"), 400},
		{"blob without room", "PUT", "/v1/blobs/" + hex.EncodeToString(wrongSum[:]), "application/octet-stream", []byte("other"), 400},
		{"blob wrong content type", "PUT", "/v1/blobs/" + hex.EncodeToString(wrongSum[:]) + "?room=" + room.ID, "application/json", []byte("other"), 415},
		{"blob over the limit", "PUT", "/v1/blobs/" + hex.EncodeToString(bigSum[:]) + "?room=" + room.ID, "application/octet-stream", big, 413},
		{"no such endpoint", "GET", "/v1/nothing", "", nil, 404},
	}
	for _, tt := range tests {
		req := signedRequest(t, cp.d, alice, tt.method, tt.path, tt.ctype, tt.body, time.Now())
		code, errCode := send(t, req, tt.body)
		if code != tt.status || errCode == "" {
			t.Errorf("%s: %d %q; want %d with an error code", tt.name, code, errCode, tt.status)
		}
	}
	// Nothing half-written: no rooms besides "ops", no blob files.
	rooms, _ := cp.alice.Rooms(ctx)
	if len(rooms) != 1 {
		t.Errorf("rooms after bad requests: %+v", rooms)
	}
	if _, err := cp.alice.Blob(ctx, room.ID, hex.EncodeToString(bigSum[:])); err == nil {
		t.Error("oversized blob was stored")
	}
}
