package membershipd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/internal/vouch"
	"github.com/unibus/unibus/membershipd/store"
)

// maxJSONBody bounds every JSON request; sealed keys are the largest, a few
// hundred bytes.
const maxJSONBody = 64 << 10

func (d *Daemon) apiRoutes(mux *http.ServeMux) {
	js := func(h signedHandler) http.HandlerFunc { return d.signed(maxJSONBody, "application/json", h) }
	mux.HandleFunc("POST /v1/members", js(d.createMember))
	mux.HandleFunc("GET /v1/members/{handle}", js(d.getMember))
	mux.HandleFunc("POST /v1/rooms", js(d.createRoom))
	mux.HandleFunc("GET /v1/rooms", js(d.listRooms))
	mux.HandleFunc("GET /v1/rooms/{id}", js(d.getRoom))
	mux.HandleFunc("POST /v1/rooms/{id}/members", js(d.addRoomMember))
	mux.HandleFunc("DELETE /v1/rooms/{id}/members/{handle}", js(d.removeRoomMember))
	mux.HandleFunc("PUT /v1/rooms/{id}/keys/{handle}", js(d.putSealedKey))
	mux.HandleFunc("GET /v1/rooms/{id}/keys/{handle}", js(d.getSealedKey))
	mux.HandleFunc("POST /v1/admin/bus-grants", js(d.createBusGrant))
	mux.HandleFunc("DELETE /v1/admin/bus-grants/{nkey}", js(d.deleteBusGrant))
	mux.HandleFunc("POST /v1/admin/drain", js(d.postDrain))
	blob := d.signed(d.cfg.BlobMaxBytes, "application/octet-stream", d.putBlob)
	mux.HandleFunc("PUT /v1/blobs/{sha256}", blob)
	mux.HandleFunc("GET /v1/blobs/{sha256}", d.signed(0, "", d.getBlob))
}

// decodeJSON decodes exactly one JSON object with no unknown fields.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: more than one JSON value")
	}
	return nil
}

// memberRequest is the body of POST /v1/members and the arguments of
// membershipd bootstrap.
type memberRequest struct {
	Handle       string `json:"handle"`
	Role         string `json:"role"`
	SignPub      string `json:"sign_pub"`
	AgeRecipient string `json:"age_recipient"`
	VouchedBy    string `json:"vouched_by"`
	VouchSig     string `json:"vouch_sig"`
}

// parseMemberRequest validates a new member; it is a fuzz target.
func parseMemberRequest(body []byte) (store.Member, error) {
	var req memberRequest
	if err := decodeJSON(body, &req); err != nil {
		return store.Member{}, err
	}
	return req.member()
}

func (req memberRequest) member() (store.Member, error) {
	if err := ids.ValidHandle(req.Handle); err != nil {
		return store.Member{}, err
	}
	role := store.Role(req.Role)
	if role == "" {
		role = store.RoleMember
	}
	if role != store.RoleAdmin && role != store.RoleMember {
		return store.Member{}, fmt.Errorf("role %q: must be admin or member", req.Role)
	}
	if !nkeys.IsValidPublicUserKey(req.SignPub) {
		return store.Member{}, fmt.Errorf("sign_pub %q: not an nkey user public key (U...)", req.SignPub)
	}
	if _, err := age.ParseX25519Recipient(req.AgeRecipient); err != nil {
		return store.Member{}, fmt.Errorf("age_recipient %q: not an age X25519 recipient (age1...)", req.AgeRecipient)
	}
	// The vouch's shape is checked here; whether it is the right admin's
	// and verifies is checkVouch's, which knows who asks.
	if req.VouchedBy != "" {
		if err := ids.ValidHandle(req.VouchedBy); err != nil {
			return store.Member{}, fmt.Errorf("vouched_by: %w", err)
		}
	}
	if req.VouchSig != "" && !vouch.WellFormed(req.VouchSig) {
		return store.Member{}, errors.New("vouch_sig: not a 64-byte Ed25519 signature, base64url without padding")
	}
	return store.Member{Handle: req.Handle, Role: role, SignPub: req.SignPub, AgeRecipient: req.AgeRecipient,
		VouchedBy: req.VouchedBy, VouchSig: req.VouchSig, Created: time.Now().UTC()}, nil
}

// vouchRecord is what m's vouch signs.
func vouchRecord(m store.Member) vouch.Record {
	return vouch.Record{Handle: m.Handle, Role: string(m.Role), SignPub: m.SignPub, AgeRecipient: m.AgeRecipient, VouchedBy: m.VouchedBy}
}

// checkVouch requires m to carry a vouch by voucher (the admin adding it,
// or m itself at bootstrap) that verifies with voucher's signing key. It
// returns the error code and message of a refusal, or "" if m is vouched.
func checkVouch(m store.Member, voucher, voucherSignPub string) (code, msg string) {
	switch {
	case m.VouchSig == "" || m.VouchedBy == "":
		return "vouch_required", "a new member needs the vouch of the admin adding it (vouched_by, vouch_sig): unibus member add makes one"
	case m.VouchedBy != voucher:
		return "bad_vouch", fmt.Sprintf("vouched_by %q: the vouch must be by %s, who adds the member", m.VouchedBy, voucher)
	}
	if err := vouch.Verify(voucherSignPub, vouchRecord(m), m.VouchSig); err != nil {
		return "bad_vouch", fmt.Sprintf("vouch_sig does not verify with %s's signing key over this record", voucher)
	}
	return "", ""
}

func (d *Daemon) createMember(w http.ResponseWriter, r *http.Request, req *request) {
	if req.member.Role != store.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "only an admin adds members")
		return
	}
	m, err := parseMemberRequest(req.body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if code, msg := checkVouch(m, req.member.Handle, req.member.SignPub); code != "" {
		writeError(w, http.StatusBadRequest, code, msg)
		return
	}
	if err := d.st().CreateMember(r.Context(), m); err != nil {
		d.storeError(w, r, err)
		return
	}
	d.log.Info("member added", "handle", m.Handle, "role", m.Role, "by", req.member.Handle)
	writeJSON(w, http.StatusCreated, m)
}

func (d *Daemon) getMember(w http.ResponseWriter, r *http.Request, req *request) {
	handle := r.PathValue("handle")
	if err := ids.ValidHandle(handle); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, err := d.st().Member(r.Context(), handle)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// storeError maps store errors to statuses; anything unexpected is a 500
// that is logged, with no detail sent to the client.
func (d *Daemon) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "exists", err.Error())
	case errors.Is(err, store.ErrStaleEpoch):
		writeError(w, http.StatusConflict, "stale_epoch", err.Error())
	case errors.Is(err, store.ErrNotMember):
		writeError(w, http.StatusConflict, "not_member", err.Error())
	default:
		d.internalError(w, r, err)
	}
}

func (d *Daemon) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if d.cluster != nil && storeUnavailable(err) {
		d.log.Warn("the replicated store did not answer", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the cluster's replicated store is not answering (quorum lost?); retry later")
		return
	}
	d.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
}

// storeUnavailable: the replicated store timed out or has nobody to answer,
// as when too few nodes are up for its quorum. The request may succeed
// later; it is not the server's bug.
func storeUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == http.StatusServiceUnavailable {
		return true // "JetStream system temporarily unavailable", no leader
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrConnectionClosed)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
