package membershipd

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd/store"
)

type roomRequest struct {
	Name string `json:"name"`
}

// parseRoomRequest validates a new room's body; it is a fuzz target.
func parseRoomRequest(body []byte) (string, error) {
	var req roomRequest
	if err := decodeJSON(body, &req); err != nil {
		return "", err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 100 || !utf8.ValidString(name) || strings.ContainsFunc(name, isControl) {
		return "", errors.New("name: must be 1 to 100 printable characters")
	}
	return name, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

type roomMemberRequest struct {
	Handle string `json:"handle"`
}

// parseRoomMemberRequest validates POST /v1/rooms/{id}/members; a fuzz target.
func parseRoomMemberRequest(body []byte) (string, error) {
	var req roomMemberRequest
	if err := decodeJSON(body, &req); err != nil {
		return "", err
	}
	return req.Handle, ids.ValidHandle(req.Handle)
}

type sealedKeyRequest struct {
	Epoch  int64  `json:"epoch"`
	Sealed []byte `json:"sealed"` // base64 in JSON
}

// ageHeader starts every binary age file; the server checks the shape of a
// sealed key, never its content, which it cannot read.
var ageHeader = []byte("age-encryption.org/v1\n")

// parseSealedKeyRequest validates PUT /v1/rooms/{id}/keys/{handle}; a fuzz target.
func parseSealedKeyRequest(body []byte) (sealedKeyRequest, error) {
	var req sealedKeyRequest
	if err := decodeJSON(body, &req); err != nil {
		return req, err
	}
	if req.Epoch < 1 {
		return req, errors.New("epoch: must be 1 or more")
	}
	if !bytes.HasPrefix(req.Sealed, ageHeader) || len(req.Sealed) > 16<<10 {
		return req, errors.New("sealed: must be a binary age file (age-encryption.org/v1) of at most 16 KiB")
	}
	return req, nil
}

func (d *Daemon) createRoom(w http.ResponseWriter, r *http.Request, req *request) {
	name, err := parseRoomRequest(req.body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	room := store.Room{ID: ids.NewRoomID(), Name: name, Owner: req.member.Handle, KeyEpoch: 1,
		Members: []string{req.member.Handle}, Created: time.Now().UTC()}
	if err := d.st().CreateRoom(r.Context(), room); err != nil {
		d.storeError(w, r, err)
		return
	}
	d.busChanged(r.Context())
	d.log.Info("room created", "room", room.ID, "owner", room.Owner)
	writeJSON(w, http.StatusCreated, room)
}

func (d *Daemon) listRooms(w http.ResponseWriter, r *http.Request, req *request) {
	rooms, err := d.st().RoomsOf(r.Context(), req.member.Handle)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	if rooms == nil {
		rooms = []store.Room{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

// roomFor loads the room in the path and checks the caller may see it: a
// member of the room, or an admin. It writes the error response itself.
func (d *Daemon) roomFor(w http.ResponseWriter, r *http.Request, req *request) (store.Room, bool) {
	id := r.PathValue("id")
	if err := ids.ValidRoomID(id); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return store.Room{}, false
	}
	room, err := d.st().Room(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Not a member and not found look alike: room ids are not disclosed.
		writeError(w, http.StatusNotFound, "not_found", "no such room, or you are not in it")
		return store.Room{}, false
	}
	if err != nil {
		d.storeError(w, r, err)
		return store.Room{}, false
	}
	if !room.Has(req.member.Handle) && req.member.Role != store.RoleAdmin {
		writeError(w, http.StatusNotFound, "not_found", "no such room, or you are not in it")
		return store.Room{}, false
	}
	return room, true
}

func (d *Daemon) getRoom(w http.ResponseWriter, r *http.Request, req *request) {
	if room, ok := d.roomFor(w, r, req); ok {
		writeJSON(w, http.StatusOK, room)
	}
}

// canManage: the room's owner or an admin changes its membership.
func canManage(room store.Room, m store.Member) bool {
	return m.Role == store.RoleAdmin || room.Owner == m.Handle
}

func (d *Daemon) addRoomMember(w http.ResponseWriter, r *http.Request, req *request) {
	room, ok := d.roomFor(w, r, req)
	if !ok {
		return
	}
	if !canManage(room, req.member) {
		writeError(w, http.StatusForbidden, "forbidden", "only the room's owner or an admin adds members")
		return
	}
	handle, err := parseRoomMemberRequest(req.body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if _, err := d.st().Member(r.Context(), handle); err != nil {
		d.storeError(w, r, err)
		return
	}
	if err := d.st().AddRoomMember(r.Context(), room.ID, handle); err != nil {
		d.storeError(w, r, err)
		return
	}
	d.busChanged(r.Context())
	d.log.Info("room member added", "room", room.ID, "handle", handle, "by", req.member.Handle)
	d.writeRoom(w, r, room.ID, http.StatusOK)
}

func (d *Daemon) removeRoomMember(w http.ResponseWriter, r *http.Request, req *request) {
	room, ok := d.roomFor(w, r, req)
	if !ok {
		return
	}
	handle := r.PathValue("handle")
	if err := ids.ValidHandle(handle); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	// A member may always leave; removing someone else takes the owner or
	// an admin.
	if handle != req.member.Handle && !canManage(room, req.member) {
		writeError(w, http.StatusForbidden, "forbidden", "only the room's owner or an admin removes members")
		return
	}
	if handle == room.Owner {
		writeError(w, http.StatusConflict, "owner", "the room's owner cannot be removed")
		return
	}
	epoch, err := d.st().RemoveRoomMember(r.Context(), room.ID, handle)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	d.busChanged(r.Context())
	d.log.Info("room member removed", "room", room.ID, "handle", handle, "by", req.member.Handle, "key_epoch", epoch)
	d.writeRoom(w, r, room.ID, http.StatusOK)
}

func (d *Daemon) writeRoom(w http.ResponseWriter, r *http.Request, id string, status int) {
	room, err := d.st().Room(r.Context(), id)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	writeJSON(w, status, room)
}

// putSealedKey stores a room key sealed to one member. Any member of the
// room may distribute keys (whoever made the key seals it for the others),
// but only to members, and only for the room's current epoch.
func (d *Daemon) putSealedKey(w http.ResponseWriter, r *http.Request, req *request) {
	room, ok := d.roomFor(w, r, req)
	if !ok {
		return
	}
	if !room.Has(req.member.Handle) {
		writeError(w, http.StatusForbidden, "forbidden", "only members of the room distribute its key")
		return
	}
	handle := r.PathValue("handle")
	if err := ids.ValidHandle(handle); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !room.Has(handle) {
		writeError(w, http.StatusConflict, "not_member", fmt.Sprintf("%q is not a member of the room", handle))
		return
	}
	k, err := parseSealedKeyRequest(req.body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := d.st().PutSealedKey(r.Context(), store.SealedKey{Room: room.ID, Handle: handle, Epoch: k.Epoch, Sealed: k.Sealed}); err != nil {
		d.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getSealedKey serves a member its own sealed key and nobody else's.
//
// It is the hot path of clients joining a room, so it skips loading the
// room: a sealed key exists only for a current member (it is deleted with
// the membership), so finding the caller's key is the membership check.
func (d *Daemon) getSealedKey(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	if err := ids.ValidRoomID(id); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if handle := r.PathValue("handle"); handle != req.member.Handle {
		if _, ok := d.roomFor(w, r, req); ok {
			writeError(w, http.StatusForbidden, "forbidden", "a member fetches only its own sealed key")
		}
		return
	}
	k, err := d.st().SealedKey(r.Context(), id, req.member.Handle)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such room, you are not in it, or no key was shared with you yet")
		return
	}
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}
