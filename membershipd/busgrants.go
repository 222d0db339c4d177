package membershipd

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/unibus/unibus/membershipd/store"
)

// A bus grant is a NATS credential that exists for one run of a tool that
// must write the control-plane buckets directly (membershipd migrate-to-kv)
// and for nothing else: an admin asks for it over the signed API with a
// public nkey it made for that run, uses it on this node's NATS port, and
// deletes it when done; it also expires on its own. It lives only in this
// node's memory, so a restart revokes it. No member, admins included, has
// standing rights on the buckets.
type busGrant struct {
	nkey    string
	inbox   string // the only subjects it may subscribe to: its replies
	by      string // the admin who asked, for the log
	expires time.Time
}

// maxGrantTTL bounds a grant: long enough for a large migration, short
// enough that a forgotten one does not linger.
const (
	defaultGrantTTL = 10 * time.Minute
	maxGrantTTL     = time.Hour
)

func (g busGrant) user(daemonAcc *server.Account) *server.NkeyUser {
	return &server.NkeyUser{
		Nkey:    g.nkey,
		Account: daemonAcc,
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: store.StoreClientPublishSubjects()},
			Subscribe: &server.SubjectPermission{Allow: []string{g.inbox + ".>"}},
		},
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}},
	}
}

// grantInbox is a grant's reply prefix. It is not under _INBOX, where the
// daemon's own replies are: a grant never sees the daemon's traffic.
func grantInbox() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "_GRANT." + hex.EncodeToString(b)
}

type busGrants struct {
	mu sync.Mutex
	m  map[string]busGrant
}

func (g *busGrants) add(gr busGrant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]busGrant{}
	}
	g.m[gr.nkey] = gr
}

func (g *busGrants) remove(nkey string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[nkey]
	delete(g.m, nkey)
	return ok
}

// live returns the grants not yet expired, in a stable order.
func (g *busGrants) live() []busGrant {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	var out []busGrant
	for k, gr := range g.m {
		if now.After(gr.expires) {
			delete(g.m, k)
			continue
		}
		out = append(out, gr)
	}
	slices.SortFunc(out, func(a, b busGrant) int { return strings.Compare(a.nkey, b.nkey) })
	return out
}
