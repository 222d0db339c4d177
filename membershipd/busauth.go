package membershipd

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd/store"
)

// Under --bus-auth enforce the bus has two NATS accounts, and isolation
// rests on them before any subject list:
//
//   - the daemon's account is nats-server's global account ($G): JetStream,
//     the control-plane KV buckets and the blob object store live there
//     (where clusters made before the split keep them), and only the
//     daemon's in-process connection and short-lived grants (see
//     busgrants.go) log into it;
//   - membersAccount holds every member's connection. It has no JetStream
//     and imports nothing, so no subject a member can name — $JS.API.>,
//     $KV.>, $O.>, a reply subject — reaches the daemon's state.
//
// Within membersAccount, subject lists confine each member to its rooms
// and its own inbox. Members serve no requests, so they have no response
// permission: a response permission lets a connection publish once on the
// reply subject of any message it received, whatever its allow list says,
// which is how a member used to write to any subject at all.
const membersAccount = "MEMBERS"

// accountsConfig declares the accounts in nats-server's configuration
// syntax, the only public way to give one account JetStream and not the
// other. The configuration syntax reserves the name $G, so the daemon's
// account is declared as daemonPlaceholder and renamed: nats-server applies
// a configured account named $G to its global account.
const (
	daemonPlaceholder = "UNIBUS_DAEMON"
	accountsConfig    = `accounts { ` + daemonPlaceholder + `: { jetstream: enabled }, ` + membersAccount + `: {} }`
)

// withAccounts declares the two accounts in opts, and nats-server's own
// system account under its default name ($SYS, as every node of a cluster
// must have it, old binaries included), so that the daemon's system
// identity (sysconn.go) is bound to it from the start.
func withAccounts(opts *server.Options) error {
	if err := opts.ProcessConfigString(accountsConfig); err != nil {
		return fmt.Errorf("nats accounts: %w", err)
	}
	for _, a := range opts.Accounts {
		if a.Name == daemonPlaceholder {
			a.Name = server.DEFAULT_GLOBAL_ACCOUNT
		}
	}
	opts.Accounts = append(opts.Accounts, server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT))
	return nil
}

// accountsByName finds the accounts that withAccounts declared.
func accountsByName(opts *server.Options) (daemon, members *server.Account) {
	for _, a := range opts.Accounts {
		switch a.Name {
		case server.DEFAULT_GLOBAL_ACCOUNT:
			daemon = a
		case membersAccount:
			members = a
		}
	}
	return daemon, members
}

// memberPermissions: publish and subscribe on the member's rooms, subscribe
// to its own inbox (replies to its requests), and nothing else. Admins get
// the same: their powers are in the control plane, never raw rights on the
// control buckets.
func memberPermissions(handle string, rooms []string) *server.Permissions {
	// Non-nil, possibly empty, allow lists: nil would mean "allow all".
	pub := make([]string, 0, len(rooms))
	for _, id := range rooms {
		pub = append(pub, ids.RoomSubject(id)+".>")
	}
	sub := append(append(make([]string, 0, len(pub)+1), pub...), ids.InboxPrefix(handle)+".>")
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
		// Response stays nil: members serve no requests.
	}
}

// busUsers turns the member store into nats-server nkey users: each member
// authenticates with its signing key into membersAccount; daemonPub, the
// daemon's own in-process identity, and each live grant log into the
// daemon's account. accounts come from the running server's options.
func busUsers(members []store.Member, rooms []store.Room, daemonPub string, grants []busGrant, daemonAcc, membersAcc *server.Account) []*server.NkeyUser {
	roomsOf := map[string][]string{}
	for _, r := range rooms {
		for _, h := range r.Members {
			roomsOf[h] = append(roomsOf[h], r.ID)
		}
	}
	users := []*server.NkeyUser{{
		Nkey:                   daemonPub,
		Account:                daemonAcc,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}}
	memberKeys := map[string]bool{}
	for _, m := range members {
		memberKeys[m.SignPub] = true
	}
	for _, g := range grants {
		// A member made since with the grant's key keeps its own account:
		// two users with one nkey would make every reload fail.
		if !memberKeys[g.nkey] {
			users = append(users, g.user(daemonAcc))
		}
	}
	for _, m := range members {
		users = append(users, &server.NkeyUser{
			Nkey:                   m.SignPub,
			Account:                membersAcc,
			Permissions:            memberPermissions(m.Handle, roomsOf[m.Handle]),
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}, jwt.ConnectionTypeWebsocket: {}},
		})
	}
	return users
}

// loadBusUsers reads the store into nkey users. Before the store is ready
// (a cluster node waiting for its KV buckets) only the daemon may connect.
func (d *Daemon) loadBusUsers(ctx context.Context, daemonAcc, membersAcc *server.Account) ([]*server.NkeyUser, error) {
	sys, err := d.sysID.user()
	if err != nil {
		return nil, err
	}
	grants := d.grants.live()
	if !d.controlReady() {
		return append(busUsers(nil, nil, d.busKey.pub, grants, daemonAcc, membersAcc), sys), nil
	}
	members, err := d.st().AllMembers(ctx)
	if err != nil {
		return nil, err
	}
	rooms, err := d.st().AllRooms(ctx)
	if err != nil {
		return nil, err
	}
	return append(busUsers(members, rooms, d.busKey.pub, grants, daemonAcc, membersAcc), sys), nil
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
