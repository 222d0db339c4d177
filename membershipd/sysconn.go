package membershipd

import (
	"fmt"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The JetStream meta leader steps down only on a request from the system
// account ($JS.API.META.LEADER.STEPDOWN), and nats-server has no exported
// call for it. The daemon therefore keeps one more nkey user, in $SYS,
// whose key is made in memory at start and never leaves the process, and
// which may log in over the in-process connection only: nothing that
// reaches a port, and no member or admin, can use it. It may publish that
// one API subject and read its own replies.
const metaStepdownSubject = "$JS.API.META.LEADER.STEPDOWN"

// sysIdentity is the daemon's system-account key, made on first use.
type sysIdentity struct {
	once sync.Once
	kp   nkeys.KeyPair
	pub  string
	err  error
}

func (s *sysIdentity) key() (nkeys.KeyPair, string, error) {
	s.once.Do(func() {
		if s.kp, s.err = nkeys.CreateUser(); s.err == nil {
			s.pub, s.err = s.kp.PublicKey()
		}
	})
	return s.kp, s.pub, s.err
}

// user is the nkey user of the system identity. The account is named, not
// the running server's object: nats-server binds a user to its account by
// name, and withAccounts declares $SYS so the name is known from the start.
func (s *sysIdentity) user() (*server.NkeyUser, error) {
	_, pub, err := s.key()
	if err != nil {
		return nil, fmt.Errorf("system identity: %w", err)
	}
	return &server.NkeyUser{
		Nkey:    pub,
		Account: server.NewAccount(server.DEFAULT_SYSTEM_ACCOUNT),
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{metaStepdownSubject}},
			Subscribe: &server.SubjectPermission{Allow: []string{sysInbox + ".>"}},
		},
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}, nil
}

// sysInbox keeps the system connection's replies apart from the daemon's.
const sysInbox = "_UNIBUS_SYS"

// connect opens an in-process connection in $SYS, for one drain.
func (s *sysIdentity) connect(srv *server.Server) (*nats.Conn, error) {
	kp, pub, err := s.key()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("membershipd-system"),
		nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(sysInbox), nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded server's system account: %w", err)
	}
	return nc, nil
}
