package membershipd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// restepdownAfter: a group this node leads again this long after it
// stepped down (it won the election that followed) is stepped down again.
const restepdownAfter = time.Second

// moveLeaders steps down every group of gs this node leads and waits,
// polling with backoff until ctx ends, for each to have a leader on
// another server. It returns the groups moved, with their new leader, and
// those still without one elsewhere.
func moveLeaders(ctx context.Context, e *embedded, gs []drainGroup) (moved, still []drainGroup, err error) {
	me := e.srv.Name()
	steppedAt := make([]time.Time, len(gs))
	stepDown := func(i int) error {
		g := gs[i]
		steppedAt[i] = time.Now()
		if g.Kind == "consumer" {
			return e.srv.JetStreamStepdownConsumer(g.Account, g.Stream, g.Consumer)
		}
		return e.srv.JetStreamStepdownStream(g.Account, g.Stream)
	}
	pending := map[int]bool{}
	for i := range gs {
		if err := stepDown(i); err != nil {
			return nil, nil, fmt.Errorf("step down %s: %w", gs[i], err)
		}
		pending[i] = true
	}
	moved = []drainGroup{}
	for wait := 10 * time.Millisecond; len(pending) > 0; wait = min(wait*3/2, 500*time.Millisecond) {
		for i := range pending {
			leader := groupLeader(ctx, e, gs[i])
			if leader != "" && leader != me {
				g := gs[i]
				g.Leader = leader
				moved = append(moved, g)
				delete(pending, i)
				continue
			}
			if leader == me && time.Since(steppedAt[i]) > restepdownAfter {
				if err := stepDown(i); err != nil {
					return nil, nil, fmt.Errorf("step down %s again: %w", gs[i], err)
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	for i := range pending {
		g := gs[i]
		g.Reason = "no leader on another server confirmed before the deadline"
		still = append(still, g)
	}
	return moved, still, nil
}

// groupLeader is the server that leads g now, "" if none is known. In the
// daemon's own account the leader is asked (only a leader answers stream
// and consumer info, so the answer proves it serves); elsewhere this
// node's view is all the daemon can read.
func groupLeader(ctx context.Context, e *embedded, g drainGroup) string {
	me := e.srv.Name()
	if g.Kind == "stream" && e.srv.JetStreamIsStreamLeader(g.Account, g.Stream) {
		return me
	}
	if g.Account == server.DEFAULT_GLOBAL_ACCOUNT {
		// Short: while the group elects, nobody answers, and the next
		// poll is the better question.
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if g.Kind == "consumer" {
			c, err := e.js.Consumer(ctx, g.Stream, g.Consumer)
			if err != nil || c.CachedInfo().Cluster == nil {
				return ""
			}
			return c.CachedInfo().Cluster.Leader
		}
		st, err := e.js.Stream(ctx, g.Stream)
		if err != nil || st.CachedInfo().Cluster == nil {
			return ""
		}
		return st.CachedInfo().Cluster.Leader
	}
	acc, err := e.srv.JszAccount(&server.JSzOptions{Account: g.Account, Streams: true, Consumer: true})
	if err != nil {
		return ""
	}
	for _, sd := range acc.Streams {
		if sd.Name != g.Stream {
			continue
		}
		if g.Kind == "stream" && sd.Cluster != nil {
			return sd.Cluster.Leader
		}
		for _, c := range sd.Consumer {
			if c != nil && c.Name == g.Consumer && c.Cluster != nil {
				return c.Cluster.Leader
			}
		}
	}
	return ""
}

// moveMetaLeader asks, as the system account, the meta leader (this
// node) to step down, and waits until another server leads the meta
// group. A group not moved comes back with a reason and no leader.
func (d *Daemon) moveMetaLeader(ctx context.Context, e *embedded) (drainGroup, error) {
	g := drainGroup{Kind: "meta"}
	nc, err := d.sysID.connect(e.srv)
	if err != nil {
		return g, err
	}
	defer nc.Close()
	me := e.srv.Name()
	var steppedAt time.Time
	for wait := 10 * time.Millisecond; ; wait = min(wait*3/2, 500*time.Millisecond) {
		if e.srv.JetStreamIsLeader() {
			if time.Since(steppedAt) > restepdownAfter {
				steppedAt = time.Now()
				if reason := stepDownMeta(ctx, nc); reason != "" {
					g.Reason = reason
					return g, nil
				}
			}
		} else if jsz, err := e.srv.Jsz(nil); err == nil && jsz.Meta != nil && jsz.Meta.Leader != "" && jsz.Meta.Leader != me {
			g.Leader = jsz.Meta.Leader
			return g, nil
		}
		select {
		case <-ctx.Done():
			g.Reason = "no other server took over the meta group before the deadline"
			return g, nil
		case <-time.After(wait):
		}
	}
}

// stepDownMeta sends the stepdown request; it returns why it failed, or
// "". No answer at all is not a failure: the leader may have stepped down
// before it replied, which the caller's poll sees.
func stepDownMeta(ctx context.Context, nc *nats.Conn) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, metaStepdownSubject, nil)
	if err != nil {
		return ""
	}
	var resp server.JSApiLeaderStepDownResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return "the meta stepdown answer is not JSON: " + err.Error()
	}
	if resp.Error != nil {
		return "the meta leader refused to step down: " + resp.Error.Description
	}
	return ""
}
