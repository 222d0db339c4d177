// Package converge decides, from the raw answers of a JetStream cluster,
// whether it has converged and, in counts, why not. It is for membershipd's
// /healthz and /readyz, and for the operator's rollout gate, which reads the
// same counts back from /healthz.
//
// # What converged means
//
// Every stream (KV buckets and object stores included) has a leader. A
// replicated stream has exactly replicas−1 peers, each current, online,
// with no lag and not pending, and no peer change in progress, as the
// stream's leader sees it: a follower's view of its peers is stale. A stream
// the server reports offline or missing from the list counts as not
// converged; so does an R1 stream while its server is down. The meta group
// has the expected number of servers, all current. This server's own
// replicas are current, and nats-server's own health check passes.
//
// Streams are judged one by one and never summed first: a sum of followers
// over all streams hides a stream that lacks one.
//
// # Names
//
// [Facts] holds counts only, fit for a public endpoint; [Facts.Names] lists
// the streams and servers behind them, for the log.
package converge

import (
	"encoding/json"
	"slices"
)

// Input is what one server answered, as raw JSON.
type Input struct {
	// Server is this server's name: its own replicas must be current.
	Server string `json:"server"`
	// ExpectedServers is how many servers the meta group must have; zero
	// takes the meta group's own size.
	ExpectedServers int `json:"expected_servers"`
	// StreamList are the $JS.API.STREAM.LIST answers, page by page.
	StreamList []json.RawMessage `json:"stream_list"`
	// ListError is why the list stopped short (a request timed out).
	ListError string `json:"list_error,omitempty"`
	// StreamInfo are $JS.API.STREAM.INFO.<name> answers by stream name,
	// answered by each stream's leader.
	StreamInfo map[string]json.RawMessage `json:"stream_info"`
	// Meta is Jsz().Meta of this server; Healthz is Healthz() with
	// streams and consumers checked.
	Meta    json.RawMessage `json:"meta"`
	Healthz json.RawMessage `json:"healthz"`
}

// Facts is the decision, in counts.
type Facts struct {
	Converged bool `json:"converged"`
	// Reason is one line of counts saying what is not converged.
	Reason string `json:"reason,omitempty"`

	Streams           int `json:"streams"`
	StreamsConverged  int `json:"streams_converged"`
	ReplicatedStreams int `json:"replicated_streams"`
	// StreamsWithLeader counts replicated streams only.
	StreamsWithLeader int    `json:"replicated_streams_with_leader"`
	FollowersCurrent  int    `json:"followers_current"`
	FollowersExpected int    `json:"followers_expected"`
	MaxLag            uint64 `json:"max_lag"`
	Offline           int    `json:"streams_offline"`
	Missing           int    `json:"streams_missing"`
	// Slowest is the replicated stream with the fewest current followers.
	Slowest Slowest `json:"slowest_stream"`

	MetaLeaderKnown bool `json:"meta_leader_known"`
	// MetaLeaderView: this server leads the meta group, so its view of the
	// other servers' progress is authoritative. A follower only knows
	// whether the others are online.
	MetaLeaderView      bool `json:"meta_leader_view"`
	MetaServersCurrent  int  `json:"meta_servers_current"`
	MetaServersExpected int  `json:"meta_servers_expected"`

	OwnReplicasCurrent int  `json:"own_replicas_current"`
	OwnReplicas        int  `json:"own_replicas"`
	HealthzOK          bool `json:"healthz_ok"`

	// Names are the streams, servers and health errors behind Reason: for
	// the log only, never for a public endpoint.
	Names []string `json:"-"`
}

// Slowest is a stream's progress, as counts.
type Slowest struct {
	FollowersCurrent  int    `json:"followers_current"`
	FollowersExpected int    `json:"followers_expected"`
	Lag               uint64 `json:"lag"`
}

// Decide judges in.
func Decide(in Input) Facts {
	var f Facts
	var r reasons
	streams := judgeStreams(in, &f, &r)
	var seen bool
	for _, s := range streams {
		if s.ok() {
			f.StreamsConverged++
		}
		if s.replicas <= 1 {
			continue
		}
		if !seen || s.current < f.Slowest.FollowersCurrent || s.current == f.Slowest.FollowersCurrent && s.lag > f.Slowest.Lag {
			seen = true
			f.Slowest = Slowest{FollowersCurrent: s.current, FollowersExpected: s.replicas - 1, Lag: s.lag}
		}
	}
	judgeMeta(in, &f, &r)
	if f.OwnReplicasCurrent < f.OwnReplicas {
		r.addf("own replicas %d/%d current", f.OwnReplicasCurrent, f.OwnReplicas)
	}
	judgeHealthz(in, &f, &r)
	f.Reason = r.line()
	f.Converged = f.Reason == ""
	slices.Sort(f.Names)
	f.Names = slices.Compact(f.Names)
	return f
}

func judgeMeta(in Input, f *Facts, r *reasons) {
	var m metaInfo
	if len(in.Meta) == 0 || string(in.Meta) == "null" || json.Unmarshal(in.Meta, &m) != nil {
		f.MetaServersExpected = in.ExpectedServers
		r.addf("no meta group")
		return
	}
	f.MetaServersExpected = in.ExpectedServers
	if f.MetaServersExpected == 0 {
		f.MetaServersExpected = m.Size
	}
	f.MetaLeaderKnown = m.Leader != ""
	if !f.MetaLeaderKnown {
		r.addf("no meta leader")
		return
	}
	f.MetaLeaderView = m.Leader == in.Server
	// Without a leader nats-server lists this server among the replicas;
	// with one, it leaves itself out. Its own currency with the leader is
	// what Healthz checks.
	f.MetaServersCurrent = 1
	for _, p := range m.Replicas {
		var current bool
		switch {
		case f.MetaLeaderView:
			current = p.caughtUp()
		case p.Name == m.Leader:
			// A follower knows the leader is current when it heard it
			// within two heartbeats.
			current = p.Current && !p.Offline
		default:
			// A follower does not track the other followers' progress
			// (nats-server reports them not current): it can only tell
			// whether the meta layer has seen them go offline. The
			// meta leader's own /healthz has the authoritative count.
			current = !p.Offline
		}
		if current {
			f.MetaServersCurrent++
		} else {
			f.Names = append(f.Names, "meta peer "+p.Name)
		}
	}
	known := 1 + len(m.Replicas)
	switch {
	case m.Size != f.MetaServersExpected || known != f.MetaServersExpected:
		r.addf("meta group has %d of %d servers", min(m.Size, known), f.MetaServersExpected)
	case f.MetaServersCurrent < f.MetaServersExpected:
		r.addf("meta group %d/%d servers current", f.MetaServersCurrent, f.MetaServersExpected)
	}
}

func judgeHealthz(in Input, f *Facts, r *reasons) {
	var h healthStatus
	if len(in.Healthz) == 0 || json.Unmarshal(in.Healthz, &h) != nil {
		r.addf("no nats-server health check")
		return
	}
	f.HealthzOK = h.Status == "ok" && h.Error == "" && len(h.Errors) == 0
	if f.HealthzOK {
		return
	}
	r.addf("nats-server health check failing")
	// Healthz errors name accounts and streams: the log may show them.
	if h.Error != "" {
		f.Names = append(f.Names, "healthz: "+h.Error)
	}
	for _, e := range h.Errors {
		f.Names = append(f.Names, "healthz: "+e.Error)
	}
}
