package membershipd

import (
	"net/http"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/unibus/unibus/membershipd/store"
)

type grantRequest struct {
	NKey       string `json:"nkey"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// grantResponse tells the tool how to use its grant on this node.
type grantResponse struct {
	NKey        string    `json:"nkey"`
	InboxPrefix string    `json:"inbox_prefix"`
	Expires     time.Time `json:"expires"`
}

// createBusGrant: POST /v1/admin/bus-grants, admins only. The answer comes
// once the credential is in force on this node's bus.
func (d *Daemon) createBusGrant(w http.ResponseWriter, r *http.Request, req *request) {
	if req.member.Role != store.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "only an admin asks for a bus grant")
		return
	}
	if d.cfg.BusAuth != BusAuthEnforce || d.NATSURL() == "" {
		writeError(w, http.StatusConflict, "no_bus_auth", "this node's bus does not authenticate clients (--bus-auth is not enforce, or NATS is external): no grant is needed or possible")
		return
	}
	var g grantRequest
	if err := decodeJSON(req.body, &g); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !nkeys.IsValidPublicUserKey(g.NKey) {
		writeError(w, http.StatusBadRequest, "bad_request", "nkey: not an nkey user public key (U...)")
		return
	}
	ttl := time.Duration(g.TTLSeconds) * time.Second
	switch {
	case g.TTLSeconds == 0:
		ttl = defaultGrantTTL
	case ttl < time.Second || ttl > maxGrantTTL:
		writeError(w, http.StatusBadRequest, "bad_request", "ttl_seconds: must be 1 to 3600")
		return
	}
	members, err := d.st().AllMembers(r.Context())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	for _, m := range members {
		if m.SignPub == g.NKey {
			// One key, one identity: a member's key never doubles as a
			// grant, or the grant would outlive its purpose.
			writeError(w, http.StatusConflict, "exists", "nkey: that is a member's signing key; make a fresh key for the grant")
			return
		}
	}
	gr := busGrant{nkey: g.NKey, inbox: grantInbox(), by: req.member.Handle, expires: time.Now().Add(ttl)}
	d.grants.add(gr)
	time.AfterFunc(ttl, func() { d.bus.request() })
	gen := d.bus.request()
	if !d.bus.wait(r.Context(), gen, 10*time.Second) {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the grant is not in force on the bus yet; try again")
		return
	}
	d.log.Info("bus grant issued", "by", req.member.Handle, "expires", gr.expires.Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, grantResponse{NKey: gr.nkey, InboxPrefix: gr.inbox, Expires: gr.expires})
}

// deleteBusGrant: DELETE /v1/admin/bus-grants/{nkey}, admins only. The
// credential's connections are closed by the reload.
func (d *Daemon) deleteBusGrant(w http.ResponseWriter, r *http.Request, req *request) {
	if req.member.Role != store.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "only an admin removes a bus grant")
		return
	}
	if !d.grants.remove(r.PathValue("nkey")) {
		writeError(w, http.StatusNotFound, "not_found", "no such bus grant on this node (expired, or never issued here)")
		return
	}
	d.busChanged(r.Context())
	d.log.Info("bus grant removed", "by", req.member.Handle)
	w.WriteHeader(http.StatusNoContent)
}
