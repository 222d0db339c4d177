package membershipd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
)

// rawAnswer is what a raw HTTP/1.1 client got back, or why it got nothing.
type rawAnswer struct {
	status int
	code   string
	err    error // no answer: the server is still waiting for the body
}

// sendHeadersOnly writes a request's line and headers, announcing a body of
// contentLength bytes, then writes only sent of it (and half-closes when
// sent is not nil) and waits up to 5 s for the answer. The server can
// answer before the body only if it never tried to read it.
func sendHeadersOnly(t *testing.T, d *Daemon, method, uri, auth, contentType string, contentLength int64, sent []byte) rawAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", d.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		method, uri, d.HTTPAddr(), auth, contentType, contentLength)
	if sent != nil {
		conn.Write(sent)
		conn.(*net.TCPConn).CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawAnswer{err: err}
	}
	defer resp.Body.Close()
	var e apiError
	json.NewDecoder(resp.Body).Decode(&e)
	return rawAnswer{status: resp.StatusCode, code: e.Code}
}

// TestRefusedBeforeTheBody: every refusal an unauthenticated client can
// provoke (bad header, clock, unknown handle, size, bad signature) is
// answered while a 16 MiB body is still unsent, so such a client cannot make
// the server read, buffer or hash it.
func TestRefusedBeforeTheBody(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	limit := cp.cfg.BlobMaxBytes
	big := bytes.Repeat([]byte{'u'}, int(limit))
	sum := sha256.Sum256(big)
	uri := "/v1/blobs/" + hex.EncodeToString(sum[:]) + "?room=" + room.ID
	over := append(bytes.Clone(big), 'x')
	overSum := sha256.Sum256(over)
	overURI := "/v1/blobs/" + hex.EncodeToString(overSum[:]) + "?room=" + room.ID
	now := time.Now()
	sign := func(id *client.Identity, handle, uri string, body []byte, at time.Time) string {
		h, err := reqsign.Sign(id.Sign, handle, "PUT", uri, body, at)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	alice, mallory := cp.alice.Identity(), mustIdentity(t, "mallory")
	tests := []struct {
		name, uri, auth string
		length          int64
		status          int
		code            string
	}{
		{"bad signature for a known handle", uri, sign(mallory, "alice", uri, big, now), limit, 401, "bad_signature"},
		{"unknown handle", uri, sign(mallory, "mallory", uri, big, now), limit, 401, "unknown_handle"},
		{"stale timestamp", uri, sign(alice, "alice", uri, big, now.Add(-5*time.Minute)), limit, 401, "stale_timestamp"},
		{"malformed header", uri, reqsign.Scheme + " handle=alice,ts=1", limit, 401, "bad_authorization"},
		{"Content-Length over the limit, validly signed", overURI, sign(alice, "alice", overURI, over, now), limit + 1, 413, "too_large"},
		{"Content-Length over the limit, signed for less", uri, sign(alice, "alice", uri, big, now), limit + 1, 413, "too_large"},
	}
	for _, tt := range tests {
		start := time.Now()
		got := sendHeadersOnly(t, cp.d, "PUT", tt.uri, tt.auth, "application/octet-stream", tt.length, nil)
		t.Logf("%s: %d %s in %s, 0 body bytes sent", tt.name, got.status, got.code, time.Since(start).Round(time.Microsecond))
		if got.err != nil {
			t.Errorf("%s: no answer with the body unsent (%v): the server waits to read it", tt.name, got.err)
			continue
		}
		if got.status != tt.status || got.code != tt.code {
			t.Errorf("%s: %d %s; want %d %s", tt.name, got.status, got.code, tt.status, tt.code)
		}
	}

	// A valid upload of exactly the limit still works, and reads back.
	id, err := cp.alice.PutBlob(ctx, room.ID, big)
	if err != nil {
		t.Fatalf("blob of the limit (%s): %v", byteSize(limit), err)
	}
	if got, err := cp.alice.Blob(ctx, room.ID, id); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
}

// TestBodyMustBeTheSignedOne: a body that is not the one signed is refused
// with a code, and does not consume the nonce; the signed body then goes
// through once.
func TestBodyMustBeTheSignedOne(t *testing.T) {
	cp := newControlPlane(t)
	ctx := context.Background()
	room, _, err := cp.alice.CreateRoomWithKey(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	alice := cp.alice.Identity()
	blob := bytes.Repeat([]byte("unibus "), 100_000) // 700 kB, past net/http's small-body drain
	sum := sha256.Sum256(blob)
	path := "/v1/blobs/" + hex.EncodeToString(sum[:]) + "?room=" + room.ID
	req := signedRequest(t, cp.d, alice, "PUT", path, "application/octet-stream", blob, time.Now())

	altered := bytes.Clone(blob)
	altered[len(altered)/2] ^= 1
	if code, c := send(t, req, altered); code != 401 || c != "body_mismatch" {
		t.Errorf("one byte changed: %d %s; want 401 body_mismatch", code, c)
	}
	req.ContentLength = int64(len(blob) - 1)
	if code, c := send(t, req, blob[:len(blob)-1]); code != 401 || c != "body_mismatch" {
		t.Errorf("shorter body, honest Content-Length: %d %s; want 401 body_mismatch", code, c)
	}
	req.ContentLength = int64(len(blob))
	cut := sendHeadersOnly(t, cp.d, "PUT", path, req.Header.Get("Authorization"), "application/octet-stream", int64(len(blob)), blob[:len(blob)/2])
	if cut.err != nil || cut.status != 400 || cut.code != "bad_body" {
		t.Errorf("body cut off mid-way: %d %s %v; want 400 bad_body", cut.status, cut.code, cut.err)
	}
	// The refusals above left the nonce unused: the signed body is accepted
	// with the same header, once.
	if code, c := send(t, req, blob); code != 201 {
		t.Fatalf("the signed body after the refusals: %d %s; want 201", code, c)
	}
	if code, c := send(t, req, blob); code != 401 || c != "replayed_nonce" {
		t.Errorf("replayed: %d %s; want 401 replayed_nonce", code, c)
	}
	if got, err := cp.alice.Blob(ctx, room.ID, hex.EncodeToString(sum[:])); err != nil || !bytes.Equal(got, blob) {
		t.Errorf("stored blob: %d bytes, %v", len(got), err)
	}
	// A JSON request too: the signed body, not another of the same length.
	create := signedRequest(t, cp.d, alice, "POST", "/v1/rooms", "application/json", []byte(`{"name":"aaa"}`), time.Now())
	if code, c := send(t, create, []byte(`{"name":"bbb"}`)); code != 401 || c != "body_mismatch" {
		t.Errorf("JSON body swapped: %d %s; want 401 body_mismatch", code, c)
	}
	if rooms, _ := cp.alice.Rooms(ctx); len(rooms) != 1 || strings.Contains(fmt.Sprint(rooms), "bbb") {
		t.Errorf("rooms after a swapped body: %+v", rooms)
	}
}
