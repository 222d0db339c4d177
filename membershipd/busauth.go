package membershipd

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd/store"
)

// busUsers turns the member store into nats-server nkey users for
// --bus-auth enforce: each member authenticates with its signing key and may
// publish and subscribe only on the subjects of its rooms, plus subscribe to
// its own inbox and answer requests it received. A member in no room can
// connect and do nothing.
//
// daemonPub is the daemon's own in-process identity: unrestricted, but
// allowed only over the in-process connection, and its key never leaves
// memory.
func busUsers(members []store.Member, rooms []store.Room, daemonPub string) []*server.NkeyUser {
	subjects := map[string][]string{}
	for _, r := range rooms {
		for _, h := range r.Members {
			subjects[h] = append(subjects[h], ids.RoomSubject(r.ID)+".>")
		}
	}
	users := []*server.NkeyUser{{
		Nkey:                   daemonPub,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}}
	for _, m := range members {
		// Non-nil, possibly empty, allow lists: nil would mean "allow all".
		pub := append([]string{}, subjects[m.Handle]...)
		if m.Role == store.RoleAdmin {
			// Admins may write the control-plane buckets directly, for
			// membershipd migrate-to-kv; they already control every room.
			pub = append(pub, store.StoreClientPublishSubjects()...)
		}
		sub := append(append([]string{}, subjects[m.Handle]...), ids.InboxPrefix(m.Handle)+".>")
		users = append(users, &server.NkeyUser{
			Nkey: m.SignPub,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: pub},
				Subscribe: &server.SubjectPermission{Allow: sub},
				Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
			},
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}, jwt.ConnectionTypeWebsocket: {}},
		})
	}
	return users
}

// loadBusUsers reads the store into nkey users. Before the store is ready
// (a cluster node waiting for its KV buckets) only the daemon may connect.
func (d *Daemon) loadBusUsers(ctx context.Context) ([]*server.NkeyUser, error) {
	if !d.controlReady() {
		return busUsers(nil, nil, d.busKey.pub), nil
	}
	members, err := d.st().AllMembers(ctx)
	if err != nil {
		return nil, err
	}
	rooms, err := d.st().AllRooms(ctx)
	if err != nil {
		return nil, err
	}
	return busUsers(members, rooms, d.busKey.pub), nil
}

// busChanged applies a membership change to the running data plane: the
// server reloads its users, re-checks every connected client, and drops the
// subscriptions a client is no longer allowed; other clients stay connected.
func (d *Daemon) busChanged(ctx context.Context) {
	if d.cfg.BusAuth != BusAuthEnforce {
		return
	}
	e, ok := d.dataPlane().(*embedded)
	if !ok {
		return // an external NATS has its own authorization
	}
	d.busMu.Lock()
	defer d.busMu.Unlock()
	users, err := d.loadBusUsers(ctx)
	if err == nil {
		err = e.setUsers(users)
	}
	if err != nil {
		d.log.Error("could not apply a membership change to the bus; it applies at the next change or restart", "err", err)
	}
}

// warnAuth is --bus-auth warn: every client is let in, and each anonymous
// one is logged so an operator sees who would be refused under enforce.
type warnAuth struct{ log *slog.Logger }

func (a warnAuth) Check(c server.ClientAuthentication) bool {
	if _, tcp := c.RemoteAddress().(*net.TCPAddr); tcp {
		a.log.Warn("anonymous nats client allowed by --bus-auth warn", "remote", c.RemoteAddress().String())
	}
	return true
}
