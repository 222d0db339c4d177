// Package client is the Go client of the unibus control plane and bus: it
// signs requests to membershipd, seals and opens room keys with age, and
// encrypts messages end to end with the room key.
//
// It is for programs that talk to a unibus cluster, and for the unibus
// command's member, room, send and listen verbs.
//
// # Trust model
//
// The server stores and forwards only ciphertext: room keys sealed to each
// member's age recipient, and messages sealed with XChaCha20-Poly1305 under
// the room key. Anyone in a room can read and write its messages.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unibus/unibus/internal/reqsign"
)

// Client talks to one membershipd as one member.
type Client struct {
	base     string
	id       *Identity
	http     *http.Client
	serverCA string // the CA file an https:// server is verified against; "" for the system roots
	now      func() time.Time
}

// New returns a client for the control plane at baseURL: https://host:8470
// for a node with a certificate (verified against [WithServerCA]'s CA, or
// the system roots without it; TLS 1.3), http:// for loopback development.
func New(baseURL string, id *Identity, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), id: id, http: defaultHTTP(), now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Identity is the member the client acts as.
func (c *Client) Identity() *Identity { return c.id }

// APIError is an error answer of the control plane.
type APIError struct {
	Status  int
	Code    string
	Message string
	body    []byte // the whole answer, for endpoints whose refusals carry more (Drain)
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// do sends a signed request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	// Sign exactly the request URI that goes on the wire.
	auth, err := reqsign.Sign(c.id.Sign, c.id.Handle, method, req.URL.RequestURI(), body, c.now())
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.certError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error, Code string }
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error, e.Code = strings.TrimSpace(string(data)), "http"
		}
		return &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Error, body: data}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o, err = io.ReadAll(resp.Body)
		return err
	default:
		return json.NewDecoder(resp.Body).Decode(out)
	}
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.do(ctx, method, path, "application/json", body, out)
}

// Member is a member as the API shows it. VouchSig is the signature of
// VouchedBy, the admin who added it, over the record (internal/vouch); the
// client seals room keys only to records whose vouch it can trace to an
// admin it trusts.
type Member struct {
	Handle       string    `json:"handle"`
	Role         string    `json:"role"`
	SignPub      string    `json:"sign_pub"`
	AgeRecipient string    `json:"age_recipient"`
	VouchedBy    string    `json:"vouched_by,omitempty"`
	VouchSig     string    `json:"vouch_sig,omitempty"`
	Created      time.Time `json:"created"`
}

// Room is a room as the API shows it.
type Room struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Owner    string    `json:"owner"`
	KeyEpoch int64     `json:"key_epoch"`
	Members  []string  `json:"members"`
	Created  time.Time `json:"created"`
}

// CreateMember adds a member (admins only). Unless m already carries a
// vouch, the caller vouches for it: it signs the record with its own key,
// which the server requires.
func (c *Client) CreateMember(ctx context.Context, m Member) (Member, error) {
	if m.Role == "" {
		m.Role = "member" // the server's default, and the role the vouch must cover
	}
	if m.VouchSig == "" {
		m.VouchedBy = c.id.Handle
		var err error
		if m.VouchSig, err = c.id.Vouch(m); err != nil {
			return Member{}, fmt.Errorf("vouch for %s: %w", m.Handle, err)
		}
	}
	var out Member
	err := c.doJSON(ctx, "POST", "/v1/members", map[string]string{
		"handle": m.Handle, "role": m.Role, "sign_pub": m.SignPub, "age_recipient": m.AgeRecipient,
		"vouched_by": m.VouchedBy, "vouch_sig": m.VouchSig}, &out)
	return out, err
}

// Member looks up a member's public keys.
func (c *Client) Member(ctx context.Context, handle string) (Member, error) {
	var out Member
	err := c.doJSON(ctx, "GET", "/v1/members/"+url.PathEscape(handle), nil, &out)
	return out, err
}

// CreateRoom makes a room owned by the caller. It does not make a key; see
// [Client.CreateRoomWithKey].
func (c *Client) CreateRoom(ctx context.Context, name string) (Room, error) {
	var out Room
	err := c.doJSON(ctx, "POST", "/v1/rooms", map[string]string{"name": name}, &out)
	return out, err
}

// Rooms lists the caller's rooms.
func (c *Client) Rooms(ctx context.Context) ([]Room, error) {
	var out struct{ Rooms []Room }
	err := c.doJSON(ctx, "GET", "/v1/rooms", nil, &out)
	return out.Rooms, err
}

// Room reads one room.
func (c *Client) Room(ctx context.Context, id string) (Room, error) {
	var out Room
	err := c.doJSON(ctx, "GET", "/v1/rooms/"+url.PathEscape(id), nil, &out)
	return out, err
}

// AddRoomMember adds handle to the room (owner or admin).
func (c *Client) AddRoomMember(ctx context.Context, room, handle string) (Room, error) {
	var out Room
	err := c.doJSON(ctx, "POST", "/v1/rooms/"+url.PathEscape(room)+"/members", map[string]string{"handle": handle}, &out)
	return out, err
}

// RemoveRoomMember removes handle; the room's key epoch moves on.
func (c *Client) RemoveRoomMember(ctx context.Context, room, handle string) (Room, error) {
	var out Room
	err := c.doJSON(ctx, "DELETE", "/v1/rooms/"+url.PathEscape(room)+"/members/"+url.PathEscape(handle), nil, &out)
	return out, err
}

// SealedKey is a room key sealed to one member.
type SealedKey struct {
	Room   string `json:"room"`
	Handle string `json:"handle"`
	Epoch  int64  `json:"epoch"`
	Sealed []byte `json:"sealed"`
}

// PutSealedKey uploads a sealed room key for handle.
func (c *Client) PutSealedKey(ctx context.Context, room, handle string, epoch int64, sealed []byte) error {
	return c.doJSON(ctx, "PUT", "/v1/rooms/"+url.PathEscape(room)+"/keys/"+url.PathEscape(handle),
		map[string]any{"epoch": epoch, "sealed": sealed}, nil)
}

// SealedKey fetches a sealed room key; the server gives each member only its own.
func (c *Client) SealedKey(ctx context.Context, room, handle string) (SealedKey, error) {
	var out SealedKey
	err := c.doJSON(ctx, "GET", "/v1/rooms/"+url.PathEscape(room)+"/keys/"+url.PathEscape(handle), nil, &out)
	return out, err
}
