package membershipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/membershipd/store"
)

// The bus-escape suite: mallory, a plain member of one room, attacks the
// bus with a real NATS client the way an attacker would, through every path
// that could take her out of her room — reply subjects, the JetStream API,
// the KV and object-store subjects, the system account, wildcards, another
// room, another member's inbox, queue groups — and tries each way to make
// herself an admin. Every probe must be refused; the checks look at what
// the attack would have changed (a message delivered, a stream created, a
// member record rewritten), not at error strings.

// escapeEnv is where the probes run: a single node or a cluster.
type escapeEnv struct {
	malloryURL string // where mallory connects
	carolURL   string // where the observer connects (another node in a cluster)
	mallory    *client.Identity
	carol      *client.Identity
	ownRoom    string // mallory's room (carol is in it too)
	victimRoom string // carol's room, mallory is not in it
	// daemonJS is a node's own JetStream view (the daemon's account),
	// where a stream made by an escape would show.
	daemonJS jetstream.JetStream
	// store is the control-plane store, read after the probes to see
	// that no record changed.
	store func() store.Store
	// malloryHTTP is mallory's control-plane client, to try admin-only
	// requests after the escalation attempts.
	malloryHTTP *client.Client
}

// observer is carol on the bus: subscribed to her own room (which mallory
// is not in) and to her inbox, counting whatever arrives.
type observer struct {
	mu   sync.Mutex
	got  []string
	subs []*nats.Subscription
}

func (o *observer) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

func (o *observer) reset() { o.mu.Lock(); o.got = nil; o.mu.Unlock() }

func watchAsCarol(t *testing.T, env escapeEnv) (*observer, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(env.carolURL, env.carol.NATSOptions()...)
	if err != nil {
		t.Fatalf("carol connects: %v", err)
	}
	t.Cleanup(nc.Close)
	o := &observer{}
	for _, subj := range []string{client.Subject(env.victimRoom, ">"), ids.InboxPrefix(env.carol.Handle) + ".>"} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			o.mu.Lock()
			o.got = append(o.got, m.Subject+": "+string(m.Data))
			o.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		o.subs = append(o.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return o, nc
}

// malloryConn connects mallory, recording asynchronous errors (refused
// publishes and subscriptions arrive that way).
func malloryConn(t *testing.T, env escapeEnv) (*nats.Conn, *asyncErrors) {
	t.Helper()
	errs := &asyncErrors{}
	opts := append(env.mallory.NATSOptions(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs.add(err) }))
	nc, err := nats.Connect(env.malloryURL, opts...)
	if err != nil {
		t.Fatalf("mallory connects: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// bounce publishes on mallory's own room with reply subject to, receives
// the message back on her own subscription and answers it with payload:
// the route a response permission opens.
func bounce(t *testing.T, nc *nats.Conn, env escapeEnv, to string, payload []byte) {
	t.Helper()
	own := client.Subject(env.ownRoom, "bounce")
	answered := make(chan struct{}, 1)
	sub, err := nc.Subscribe(own, func(m *nats.Msg) {
		m.Respond(payload)
		select {
		case answered <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(own, to, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Fatalf("mallory's own room message never came back: her room is not usable, so the probe proves nothing")
	}
	nc.Flush()
}

// settle gives anything that got through time to arrive.
func settle(nc ...*nats.Conn) {
	for _, c := range nc {
		c.Flush()
	}
	time.Sleep(300 * time.Millisecond)
}

// requestAnswered reports whether a request on subj got a real answer
// (not a refusal, a timeout, or "no responders").
func requestAnswered(nc *nats.Conn, subj string, data []byte) (string, bool) {
	m, err := nc.Request(subj, data, time.Second)
	if err != nil {
		return "", false
	}
	return string(m.Data), true
}

const evilStream = "EVIL"

// escalation is a member record making mallory an admin, in the KV layout.
func escalation(env escapeEnv) []byte {
	b, _ := json.Marshal(store.Member{Handle: "mallory", Role: store.RoleAdmin, SignPub: env.mallory.SignPub(), AgeRecipient: env.mallory.Recipient(), Created: time.Now().UTC()})
	return b
}

var evilStreamConfig = []byte(`{"name":"EVIL","subjects":["unibus.room.>"],"storage":"memory","num_replicas":1}`)

func runEscapeSuite(t *testing.T, env escapeEnv) {
	ctx := context.Background()
	obs, carolNC := watchAsCarol(t, env)
	nc, errs := malloryConn(t, env)

	// The probes that aim at carol: each must deliver nothing to her.
	deliveries := []struct {
		name string
		try  func(t *testing.T)
	}{
		{"publish to another room", func(t *testing.T) {
			nc.Publish(client.Subject(env.victimRoom, "chat"), []byte("injected"))
		}},
		{"reply subject into another room", func(t *testing.T) {
			bounce(t, nc, env, client.Subject(env.victimRoom, "chat"), []byte("injected by reply"))
		}},
		{"publish to another member's inbox", func(t *testing.T) {
			nc.Publish(ids.InboxPrefix(env.carol.Handle)+".x", []byte("injected"))
		}},
		{"reply subject into another member's inbox", func(t *testing.T) {
			bounce(t, nc, env, ids.InboxPrefix(env.carol.Handle)+".x", []byte("injected by reply"))
		}},
	}
	for _, p := range deliveries {
		t.Run(p.name, func(t *testing.T) {
			obs.reset()
			p.try(t)
			settle(nc, carolNC)
			if got := obs.seen(); len(got) > 0 {
				t.Errorf("got through: carol received %q", got)
			}
		})
	}

	// Subscriptions outside her room are refused by the server (an
	// asynchronous permissions violation), and while carol publishes in
	// her own room mallory sees none of it.
	listens := []struct{ name, subject, queue string }{
		{"subscribe to another room", client.Subject(env.victimRoom, ">"), ""},
		{"queue group on another room", client.Subject(env.victimRoom, ">"), "q"},
		{"subscribe to everything", ">", ""},
		{"queue group on everything", ">", "q"},
		{"subscribe to another member's inbox", ids.InboxPrefix(env.carol.Handle) + ".>", ""},
		{"subscribe to the system account's subjects", "$SYS.>", ""},
		{"subscribe to the KV subjects", "$KV.>", ""},
		{"subscribe to the object store subjects", "$O.>", ""},
		{"subscribe to the JetStream API", "$JS.>", ""},
	}
	for _, l := range listens {
		t.Run(l.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			handler := func(m *nats.Msg) { mu.Lock(); got = append(got, m.Subject); mu.Unlock() }
			var sub *nats.Subscription
			var err error
			if l.queue != "" {
				sub, err = nc.QueueSubscribe(l.subject, l.queue, handler)
			} else {
				sub, err = nc.Subscribe(l.subject, handler)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			settle(nc)
			carolNC.Publish(client.Subject(env.victimRoom, "chat"), []byte("for carol's room"))
			// Traffic mallory's own room produces is hers to see.
			settle(carolNC, nc)
			mu.Lock()
			defer mu.Unlock()
			var foreign []string
			for _, s := range got {
				if !strings.HasPrefix(s, client.Subject(env.ownRoom, "")) && !strings.HasPrefix(s, ids.InboxPrefix("mallory")+".") {
					foreign = append(foreign, s)
				}
			}
			if len(foreign) > 0 {
				t.Errorf("got through: mallory received %q", foreign)
			}
			if !errs.has(fmt.Sprintf("Subscription to %q", l.subject)) {
				t.Errorf("got through: the server accepted mallory's subscription to %s", l.subject)
			}
		})
	}

	// Requests to the servers' own APIs: none may be answered.
	requests := []struct{ name, subject string }{
		{"JetStream account info", "$JS.API.INFO"},
		{"JetStream stream list", "$JS.API.STREAM.LIST"},
		{"read a member record through the JetStream API", "$JS.API.STREAM.MSG.GET.KV_" + store.BucketMembers},
		{"direct get of a member record", "$JS.API.DIRECT.GET.KV_" + store.BucketMembers + ".$KV." + store.BucketMembers + ".alice"},
		{"object store metadata", "$JS.API.STREAM.INFO.OBJ_" + store.ObjectBlobsBucket},
		{"system account ping", "$SYS.REQ.SERVER.PING"},
		{"system account server info", "$SYS.REQ.SERVER.PING.VARZ"},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			body := []byte(`{"seq":1}`)
			if ans, ok := requestAnswered(nc, r.subject, body); ok && !isJSRefusal(ans) {
				t.Errorf("got through: %s answered %.200q", r.subject, ans)
			}
		})
	}

	// Streams: a stream capturing every room, made directly or through a
	// reply subject, must not exist afterwards in the daemon's account.
	t.Run("create a stream through the JetStream API", func(t *testing.T) {
		nc.Request("$JS.API.STREAM.CREATE."+evilStream, evilStreamConfig, time.Second)
		settle(nc)
		checkNoStream(t, env)
	})
	t.Run("create a stream through a reply subject", func(t *testing.T) {
		bounce(t, nc, env, "$JS.API.STREAM.CREATE."+evilStream, evilStreamConfig)
		settle(nc)
		checkNoStream(t, env)
	})

	// Escalation: every way to write mallory's member record as an admin.
	escalations := []struct {
		name string
		try  func(t *testing.T)
	}{
		{"write the member bucket", func(t *testing.T) {
			nc.Publish("$KV."+store.BucketMembers+".mallory", escalation(env))
		}},
		{"write the member bucket through a reply subject", func(t *testing.T) {
			bounce(t, nc, env, "$KV."+store.BucketMembers+".mallory", escalation(env))
		}},
		{"write the member bucket through the JetStream API", func(t *testing.T) {
			nc.Request("$JS.API.STREAM.MSG.DELETE.KV_"+store.BucketMembers, []byte(`{"seq":1}`), time.Second)
		}},
	}
	for _, e := range escalations {
		t.Run("escalate: "+e.name, func(t *testing.T) {
			e.try(t)
			settle(nc)
			checkStillMember(t, env)
		})
	}
	// Last, as it would destroy what the others check.
	t.Run("purge the member bucket through a reply subject", func(t *testing.T) {
		bounce(t, nc, env, "$JS.API.STREAM.PURGE.KV_"+store.BucketMembers, []byte(`{}`))
		settle(nc)
		if _, err := env.store().Member(ctx, "alice"); err != nil {
			t.Errorf("got through: alice's record is gone: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	// The probes did not break the room mallory is in: her own traffic
	// still flows, so "nothing got through" is not "nothing works".
	t.Run("her own room still works", func(t *testing.T) {
		sub, err := carolNC.SubscribeSync(client.Subject(env.ownRoom, "still"))
		if err != nil {
			t.Fatal(err)
		}
		carolNC.Flush()
		time.Sleep(100 * time.Millisecond)
		nc.Publish(client.Subject(env.ownRoom, "still"), []byte("hi"))
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Errorf("mallory's own room: carol did not receive: %v", err)
		}
	})
}

// isJSRefusal: an error answer of the JetStream API ("not enabled for
// account", "permissions") is a refusal, not an answer.
func isJSRefusal(ans string) bool {
	var r struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal([]byte(ans), &r) == nil && r.Error != nil
}

func checkNoStream(t *testing.T, env escapeEnv) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := env.daemonJS.Stream(ctx, evilStream)
	if err == nil {
		t.Errorf("got through: stream %s exists in the daemon's account", evilStream)
		return
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("look for stream %s: %v", evilStream, err)
	}
}

func checkStillMember(t *testing.T, env escapeEnv) {
	t.Helper()
	ctx := context.Background()
	m, err := env.store().Member(ctx, "mallory")
	if err != nil {
		t.Fatalf("mallory's record: %v", err)
	}
	if m.Role != store.RoleMember {
		t.Errorf("got through: mallory's record now says role %q", m.Role)
	}
	all, err := env.store().AllMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Role == store.RoleAdmin && a.Handle != "alice" {
			t.Errorf("got through: %s is an admin", a.Handle)
		}
	}
	// Whatever the store says, the control plane must not treat her as an
	// admin either (a node may cache).
	id := mustIdentity(t, fmt.Sprintf("eve%d", time.Now().UnixNano()%1e6))
	_, err = env.malloryHTTP.CreateMember(ctx, client.Member{Handle: id.Handle, Role: "admin", SignPub: id.SignPub(), AgeRecipient: id.Recipient()})
	if code, _ := apiStatus(err); code != 403 {
		t.Errorf("got through: mallory adding an admin over HTTP: %v (want 403)", err)
	}
}

// escapeRooms makes mallory and carol members, a room they share (mallory's
// own, made by mallory) and a room of carol's that mallory is not in.
func escapeRooms(t *testing.T, admin *client.Client, mallory, carol *client.Client) (own, victim string) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []*client.Client{mallory, carol} {
		id := c.Identity()
		if _, err := admin.CreateMember(ctx, client.Member{Handle: id.Handle, Role: "member", SignPub: id.SignPub(), AgeRecipient: id.Recipient()}); err != nil {
			t.Fatalf("add %s: %v", id.Handle, err)
		}
	}
	r, err := mallory.CreateRoom(ctx, "mallory's")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.AddRoomMember(ctx, r.ID, carol.Identity().Handle); err != nil {
		t.Fatal(err)
	}
	v, err := carol.CreateRoom(ctx, "carol's")
	if err != nil {
		t.Fatal(err)
	}
	return r.ID, v.ID
}

func TestBusEscapeSingleNode(t *testing.T) {
	cp := newControlPlane(t)
	malloryID, carolID := mustIdentity(t, "mallory"), mustIdentity(t, "carol2")
	base := "http://" + cp.d.HTTPAddr()
	mallory, carol := client.New(base, malloryID), client.New(base, carolID)
	own, victim := escapeRooms(t, cp.alice, mallory, carol)
	js, err := jetstream.New(cp.d.dataPlane().conn())
	if err != nil {
		t.Fatal(err)
	}
	runEscapeSuite(t, escapeEnv{
		malloryURL: cp.d.NATSURL(), carolURL: cp.d.NATSURL(),
		mallory: malloryID, carol: carolID, ownRoom: own, victimRoom: victim,
		daemonJS: js, store: cp.d.st, malloryHTTP: mallory,
	})
}

func TestBusEscapeCluster(t *testing.T) {
	alice := mustIdentity(t, "alice")
	tc := newClusterWithAdmin(t, alice)
	base := "http://" + tc.nodes[0].HTTPAddr()
	malloryID, carolID := mustIdentity(t, "mallory"), mustIdentity(t, "carol2")
	mallory, carol := client.New(base, malloryID), client.New(base, carolID)
	own, victim := escapeRooms(t, client.New(base, alice), mallory, carol)
	// Both ACLs must have reached node 3 through the KV watch before the
	// probes, or a refusal would only mean "not there yet".
	waitFor(t, "mallory's room on node 3", 20*time.Second, func() bool {
		return busAllows(tc.nodes[2].NATSURL(), malloryID, client.Subject(own, "x"))
	})
	waitFor(t, "carol's room on node 2", 20*time.Second, func() bool {
		return busAllows(tc.nodes[1].NATSURL(), carolID, client.Subject(victim, "x"))
	})
	js, err := jetstream.New(tc.nodes[0].dataPlane().conn())
	if err != nil {
		t.Fatal(err)
	}
	runEscapeSuite(t, escapeEnv{
		malloryURL: tc.nodes[2].NATSURL(), carolURL: tc.nodes[1].NATSURL(),
		mallory: malloryID, carol: carolID, ownRoom: own, victimRoom: victim,
		daemonJS: js, store: tc.nodes[0].st, malloryHTTP: mallory,
	})
}

// busAllows reports whether id may subscribe to subject on the node at url
// (no permissions violation within a short wait).
func busAllows(url string, id *client.Identity, subject string) bool {
	errs := make(chan error, 1)
	nc, err := nats.Connect(url, append(id.NATSOptions(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))...)
	if err != nil {
		return false
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync(subject); err != nil || nc.Flush() != nil {
		return false
	}
	select {
	case <-errs:
		return false
	case <-time.After(200 * time.Millisecond):
		return true
	}
}
