package membershipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/unibus/unibus/membershipd/store"
)

// Drain moves every Raft leadership this node holds (stream and replicated
// consumer leaders in every account, then the JetStream meta leader) to
// another node before it restarts, confirms the new leaders, and on request
// puts the node in lame duck. It first checks that this node's loss would
// leave every group it is part of with a quorum, and refuses, having
// touched nothing, if it would not or if a group it leads has no other
// live replica to take over (unless forced). A dry run answers that
// check alone: what would move, what could not, what would lose quorum.
//
// It is admin-only and names streams in its answer: the admin may know the
// deployment, the public endpoints may not.

// Bounds of one drain. The upper bound stays below the HTTP server's
// WriteTimeout and the client's 30s HTTP timeout, or the answer would be
// lost after the work was done.
const (
	defaultDrainTimeout = 20 * time.Second
	maxDrainTimeout     = 25 * time.Second
)

type drainRequest struct {
	DryRun    bool  `json:"dry_run"`
	Force     bool  `json:"force"`
	LameDuck  bool  `json:"lame_duck"`
	TimeoutMS int64 `json:"timeout_ms"`
}

// drainGroup is one Raft group in an answer: a stream, a replicated
// consumer, or the meta group (Kind "meta", no names).
type drainGroup struct {
	Kind     string `json:"kind"` // stream | consumer | meta
	Account  string `json:"account,omitempty"`
	Stream   string `json:"stream,omitempty"`
	Consumer string `json:"consumer,omitempty"`
	Replicas int    `json:"replicas,omitempty"`
	Leader   string `json:"leader,omitempty"` // moved: the new leader
	Reason   string `json:"reason,omitempty"` // stuck, at risk: why
}

func (g drainGroup) String() string {
	switch g.Kind {
	case "meta":
		return "the meta group"
	case "consumer":
		return fmt.Sprintf("consumer %s/%s > %s", g.Account, g.Stream, g.Consumer)
	}
	return fmt.Sprintf("stream %s > %s", g.Account, g.Stream)
}

// drainReport is the answer, the same shape for a dry run, a refusal and a
// drain done.
type drainReport struct {
	Node   string `json:"node"`
	DryRun bool   `json:"dry_run"`
	// Done: every leadership this node held is confirmed elsewhere (a dry
	// run: nothing is stuck and no group would lose quorum).
	Done bool `json:"done"`
	// RestartSafe: losing this node now leaves every group with a quorum.
	RestartSafe bool  `json:"restart_safe"`
	Replicas    int   `json:"replicas_here"` // Raft groups this node is a member of, the meta group included
	Leading     int   `json:"leading"`       // of those, the ones it led when asked
	MetaLeader  bool  `json:"meta_leader"`   // it led the meta group when asked
	LameDuck    bool  `json:"lame_duck"`     // lame duck was started after the answer
	ElapsedMS   int64 `json:"elapsed_ms"`
	// Moved: leaderships moved off (a dry run: to be moved), each with its
	// new leader. Stuck: leaderships that cannot or did not move. AtRisk:
	// groups a loss of this node leaves below quorum.
	Moved  []drainGroup `json:"moved"`
	Stuck  []drainGroup `json:"stuck"`
	AtRisk []drainGroup `json:"at_risk"`
}

// drainAnswer is a refusal's body: the error pair every client reads, and
// the report that says what stands in the way.
type drainAnswer struct {
	Error  string       `json:"error"`
	Code   string       `json:"code"`
	Report *drainReport `json:"report"`
}

// postDrain: POST /v1/admin/drain, admins only.
func (d *Daemon) postDrain(w http.ResponseWriter, r *http.Request, req *request) {
	if req.member.Role != store.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "only an admin drains a node")
		return
	}
	var dr drainRequest
	if err := decodeJSON(req.body, &dr); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	timeout := time.Duration(dr.TimeoutMS) * time.Millisecond
	switch {
	case dr.TimeoutMS == 0:
		timeout = defaultDrainTimeout
	case timeout < 100*time.Millisecond || timeout > maxDrainTimeout:
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("timeout_ms: must be 100 to %d", maxDrainTimeout.Milliseconds()))
		return
	}
	if dr.DryRun && dr.LameDuck {
		writeError(w, http.StatusBadRequest, "bad_request", "dry_run with lame_duck: a dry run changes nothing")
		return
	}
	e, ok := d.dataPlane().(*embedded)
	if !ok || !e.clustered() {
		writeError(w, http.StatusConflict, "not_clustered", "this node runs no clustered embedded NATS: there is no leadership to move")
		return
	}
	if !e.srv.JetStreamEnabled() {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "JetStream is not running on this node (starting, or already in lame duck)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rep, err := d.drain(ctx, e, dr)
	if err != nil {
		var refused *drainRefusal
		if errors.As(err, &refused) {
			d.log.Warn("drain refused", "by", req.member.Handle, "reason", err.Error())
			writeJSON(w, http.StatusConflict, drainAnswer{Error: err.Error(), Code: refused.code, Report: rep})
			return
		}
		d.internalError(w, r, err)
		return
	}
	d.log.Info("drain", "by", req.member.Handle, "dry_run", rep.DryRun, "done", rep.Done, "moved", len(rep.Moved),
		"stuck", len(rep.Stuck), "at_risk", len(rep.AtRisk), "lame_duck", rep.LameDuck, "elapsed_ms", rep.ElapsedMS)
	writeJSON(w, http.StatusOK, rep)
	if rep.LameDuck {
		// After the answer is out: lame duck closes this node's NATS
		// listener and clients (they reconnect elsewhere) and stops its
		// JetStream; the node serves no data plane until it restarts.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		d.lameDuck.Store(true)
		go e.srv.LameDuckShutdown()
	}
}

// drainRefusal: the drain did not start, or did not finish, for a reason
// in the cluster's state, which the report details.
type drainRefusal struct{ code, msg string }

func (e *drainRefusal) Error() string { return e.msg }

// drain carries out dr on e. A refusal comes with the report.
func (d *Daemon) drain(ctx context.Context, e *embedded, dr drainRequest) (*drainReport, error) {
	start := time.Now()
	p, err := surveyLeadership(ctx, e)
	if err != nil {
		return nil, err
	}
	rep := &drainReport{Node: e.srv.Name(), DryRun: dr.DryRun, Replicas: p.replicas, Leading: len(p.leading) + len(p.stuck),
		MetaLeader: p.metaLeader, Stuck: p.stuck, AtRisk: p.atRisk, Moved: []drainGroup{}}
	metaStuck := false
	for _, g := range p.stuck {
		metaStuck = metaStuck || g.Kind == "meta"
	}
	if p.metaLeader && !metaStuck {
		rep.Leading++
	}
	rep.RestartSafe = len(p.atRisk) == 0
	finish := func() *drainReport {
		rep.ElapsedMS = time.Since(start).Milliseconds()
		rep.Stuck, rep.AtRisk = nonNil(rep.Stuck), nonNil(rep.AtRisk)
		return rep
	}
	if dr.DryRun {
		rep.Moved = append(rep.Moved, p.leading...)
		if p.metaLeader && !metaStuck {
			rep.Moved = append(rep.Moved, drainGroup{Kind: "meta"})
		}
		rep.Done = len(p.stuck) == 0 && rep.RestartSafe
		return finish(), nil
	}
	if !dr.Force {
		switch {
		case len(p.stuck) > 0:
			return finish(), &drainRefusal{"leader_cannot_move", fmt.Sprintf("%d leaderships on %s have no other live replica to take over (first: %s): moving them would leave them leaderless; wait for the cluster to converge, or force",
				len(p.stuck), rep.Node, p.stuck[0])}
		case len(p.atRisk) > 0:
			return finish(), &drainRefusal{"would_lose_quorum", fmt.Sprintf("losing %s would leave %d groups below quorum (first: %s, %s): restart it once the others are back, or force",
				rep.Node, len(p.atRisk), p.atRisk[0], p.atRisk[0].Reason)}
		}
	}
	// Forced: a stuck group is stepped down too; it elects whoever can.
	var toMove []drainGroup
	for _, g := range append(append([]drainGroup{}, p.leading...), p.stuck...) {
		if g.Kind != "meta" {
			toMove = append(toMove, g)
		}
	}
	moved, still, err := moveLeaders(ctx, e, toMove)
	if err != nil {
		return nil, err
	}
	rep.Moved, rep.Stuck = moved, still
	// The meta group last: stream moves need no meta leader, but a meta
	// election in their midst would slow every stream info they wait on.
	if p.metaLeader {
		switch {
		case len(still) > 0:
			rep.Stuck = append(rep.Stuck, drainGroup{Kind: "meta", Reason: "not moved: stream leaderships did not move first"})
		default:
			g, err := d.moveMetaLeader(ctx, e)
			if err != nil {
				return nil, err
			}
			if g.Leader == "" {
				rep.Stuck = append(rep.Stuck, g)
			} else {
				rep.Moved = append(rep.Moved, g)
			}
		}
	}
	rep.Done = len(rep.Stuck) == 0
	if !rep.Done {
		return finish(), &drainRefusal{"not_moved", fmt.Sprintf("%d leaderships on %s did not move before the deadline (first: %s)", len(rep.Stuck), rep.Node, rep.Stuck[0])}
	}
	rep.LameDuck = dr.LameDuck && (rep.RestartSafe || dr.Force)
	return finish(), nil
}

func nonNil(gs []drainGroup) []drainGroup {
	if gs == nil {
		return []drainGroup{}
	}
	return gs
}

// survey is what this node leads and what its loss would cost.
type survey struct {
	replicas   int
	metaLeader bool
	leading    []drainGroup // led here, with another live replica (streams and consumers)
	stuck      []drainGroup // led here, with no other live replica
	atRisk     []drainGroup // below quorum without this node
}

// surveyLeadership reads, from this node's JetStream, every stream and
// consumer it holds a replica of, in every account. Whether a peer is
// alive is read from the group's leader: this node where it leads, the
// leader's stream info otherwise (a follower's view of its peers is
// stale), falling back to the local view only where the daemon cannot ask
// (an account other than its own).
func surveyLeadership(ctx context.Context, e *embedded) (*survey, error) {
	me := e.srv.Name()
	jsz, err := e.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true, Config: true})
	if err != nil {
		return nil, fmt.Errorf("read this node's jetstream state: %w", err)
	}
	s := &survey{metaLeader: e.srv.JetStreamIsLeader()}
	if jsz.Meta != nil {
		s.replicas++
		if g, ok := metaRisk(e, jsz.Meta, me, s.metaLeader); ok {
			s.atRisk = append(s.atRisk, g)
		}
		if s.metaLeader && otherAlive(jsz.Meta.Replicas, me) == 0 {
			s.stuck = append(s.stuck, drainGroup{Kind: "meta", Replicas: jsz.Meta.Size, Reason: "no other meta peer is alive"})
		}
	}
	for _, acc := range jsz.AccountDetails {
		for _, sd := range acc.Streams {
			if sd.Config == nil {
				continue
			}
			reps := max(sd.Config.Replicas, 1)
			g := drainGroup{Kind: "stream", Account: acc.Name, Stream: sd.Name, Replicas: reps}
			s.replicas++
			leads := e.srv.JetStreamIsStreamLeader(acc.Name, sd.Name)
			ci := sd.Cluster
			if !leads && acc.Name == server.DEFAULT_GLOBAL_ACCOUNT {
				ci = leaderView(ctx, e, sd.Name, ci)
			}
			s.classify(g, ci, me, leads)
			for _, c := range sd.Consumer {
				if c == nil || c.Config == nil {
					continue
				}
				crep := c.Config.Replicas
				if crep == 0 {
					crep = reps
				}
				if crep <= 1 {
					continue // R1 consumers (KV watchers) are ephemeral and have no follower to hand over to
				}
				cg := drainGroup{Kind: "consumer", Account: acc.Name, Stream: sd.Name, Consumer: c.Name, Replicas: crep}
				s.replicas++
				s.classify(cg, c.Cluster, me, c.Cluster != nil && c.Cluster.Leader == me)
			}
		}
	}
	return s, nil
}

// classify files g by what ci, its leader's view, says.
func (s *survey) classify(g drainGroup, ci *server.ClusterInfo, me string, leads bool) {
	if g.Replicas <= 1 {
		g.Reason = "R1: its only replica is on this node"
		s.atRisk = append(s.atRisk, g)
		return
	}
	if leads {
		if ci == nil || otherAlive(ci.Replicas, me) == 0 {
			st := g
			st.Reason = "no other replica is alive (current, or heard from in the last 5s)"
			s.stuck = append(s.stuck, st)
		} else {
			s.leading = append(s.leading, g)
		}
	}
	// Without this node: the leader (unless it is this node) and the
	// live followers other than this node.
	alive := 0
	if ci != nil {
		if ci.Leader != "" && ci.Leader != me {
			alive++
		}
		alive += otherAlive(ci.Replicas, me)
	}
	if quorum := g.Replicas/2 + 1; alive < quorum {
		g.Reason = fmt.Sprintf("R%d: %d other replicas alive, quorum needs %d", g.Replicas, alive, quorum)
		s.atRisk = append(s.atRisk, g)
	}
}

// peerAliveWindow: a peer its leader heard from this recently counts for
// a quorum even if it is a few writes behind. Under steady writes a
// follower is often not "current" (fully caught up) at the instant asked,
// yet it votes and takes over; a peer gone quiet for longer is treated as
// lost (nats-server marks it offline later still).
const peerAliveWindow = 5 * time.Second

// otherAlive counts the peers, other than me, that are online and current
// or heard from within peerAliveWindow.
func otherAlive(peers []*server.PeerInfo, me string) int {
	n := 0
	for _, p := range peers {
		if p != nil && p.Name != me && !p.Offline && (p.Current || p.Active <= peerAliveWindow) {
			n++
		}
	}
	return n
}

// leaderView is the stream's cluster info as its leader answers it, or
// local when the leader does not answer within a second.
func leaderView(ctx context.Context, e *embedded, stream string, local *server.ClusterInfo) *server.ClusterInfo {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, stream)
	if err != nil || st.CachedInfo().Cluster == nil {
		return local
	}
	ci := st.CachedInfo().Cluster
	// Same fields, another package's types: round-trip through JSON.
	var out server.ClusterInfo
	if b, err := json.Marshal(ci); err != nil || json.Unmarshal(b, &out) != nil {
		return local
	}
	return &out
}

// metaRisk: would the meta group lose quorum without this node? The meta
// leader knows its peers; a follower counts the servers it has routes to.
func metaRisk(e *embedded, meta *server.MetaClusterInfo, me string, leader bool) (drainGroup, bool) {
	size := meta.Size
	if size <= 1 {
		return drainGroup{}, false
	}
	var alive int
	if leader {
		alive = otherAlive(meta.Replicas, me)
	} else if rz, err := e.srv.Routez(nil); err == nil {
		seen := map[string]bool{}
		for _, r := range rz.Routes {
			seen[r.RemoteID] = true
		}
		alive = len(seen)
	}
	if quorum := size/2 + 1; alive < quorum {
		return drainGroup{Kind: "meta", Replicas: size, Reason: fmt.Sprintf("%d other servers reachable, the meta group's quorum needs %d", alive, quorum)}, true
	}
	return drainGroup{}, false
}
