package converge

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// problem is what keeps one stream from converging; the reasons name them
// in this order.
type problem int

const (
	problemNone problem = iota
	problemOffline
	problemMissing
	problemNoLeader
	problemFollowerView
	problemPeerChange
	problemPeerCount
	problemFollowers
)

type streamVerdict struct {
	name     string
	replicas int
	problem  problem
	peers    int // followers in the leader's answer
	current  int // of them caught up
	lag      uint64
}

func (s streamVerdict) ok() bool { return s.problem == problemNone }

// judgeStreams judges every stream the list knows of, filling the stream
// counts of f and the reasons.
func judgeStreams(in Input, f *Facts, r *reasons) []streamVerdict {
	entries := map[string]*streamInfo{}
	offline := map[string]bool{}
	missing := map[string]bool{}
	total := 0
	var order []string
	note := func(name string) {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	listOK := len(in.StreamList) > 0 && in.ListError == ""
	for _, raw := range in.StreamList {
		var p listPage
		if err := json.Unmarshal(raw, &p); err != nil || p.Error != nil {
			listOK = false
			if p.Error != nil {
				f.Names = append(f.Names, "stream list: "+p.Error.Description)
			}
			continue
		}
		total = max(total, p.Total)
		for _, s := range p.Streams {
			if s != nil && s.Config.Name != "" {
				entries[s.Config.Name] = s
				note(s.Config.Name)
			}
		}
		for name := range p.Offline {
			offline[name] = true
			note(name)
		}
		for _, name := range p.Missing {
			// A stream whose every peer is offline is listed twice by
			// nats-server: by hand as an entry with all replicas offline,
			// and in Missing. That is a stream down with its servers (an
			// R1 stream on a stopped node); the rest did not answer the
			// meta leader in time.
			if entries[name] != nil && allOffline(entries[name]) {
				offline[name] = true
			} else {
				missing[name] = true
			}
			note(name)
		}
	}
	if !listOK {
		r.addf("the stream list did not answer")
		if in.ListError != "" {
			f.Names = append(f.Names, "stream list: "+in.ListError)
		}
	}
	var out []streamVerdict
	for _, name := range order {
		v := streamVerdict{name: name}
		switch {
		case offline[name]:
			v.problem = problemOffline
			if e := entries[name]; e != nil {
				v.replicas = e.Config.Replicas
				countOwnDown(in.Server, e, f)
			}
		case missing[name]:
			v.problem = problemMissing
		default:
			v = judgeStream(in, name, entries[name], f)
		}
		out = append(out, v)
	}
	// Streams the list counts but no page holds (a page that did not come)
	// are missing too.
	for range max(0, total-len(order)) {
		out = append(out, streamVerdict{name: "", problem: problemMissing})
	}
	f.Streams = len(out)
	byProblem := map[problem][]streamVerdict{}
	for _, v := range out {
		switch v.problem {
		case problemOffline:
			f.Offline++
		case problemMissing:
			f.Missing++
		}
		if v.replicas > 1 {
			f.ReplicatedStreams++
			f.FollowersExpected += v.replicas - 1
			f.FollowersCurrent += v.current
			f.MaxLag = max(f.MaxLag, v.lag)
			if v.problem != problemOffline && v.problem != problemMissing && v.problem != problemNoLeader {
				f.StreamsWithLeader++
			}
		}
		if !v.ok() {
			byProblem[v.problem] = append(byProblem[v.problem], v)
			if v.name != "" {
				f.Names = append(f.Names, "stream "+v.name)
			}
		}
	}
	r.streams(byProblem)
	return out
}

// judgeStream judges a listed stream on its leader's answer: the stream
// info if its leader gave one, else the list's entry, which the meta
// leader gathered from the stream leader too.
func judgeStream(in Input, name string, listed *streamInfo, f *Facts) streamVerdict {
	si := listed
	if raw, ok := in.StreamInfo[name]; ok {
		var info streamInfo
		if json.Unmarshal(raw, &info) == nil && info.Error == nil && info.Cluster != nil && leadersView(&info) {
			si = &info
		}
	}
	v := streamVerdict{name: name, replicas: si.Config.Replicas}
	countOwn(in.Server, si, f)
	c := si.Cluster
	switch {
	case c == nil || c.Leader == "":
		v.problem = problemNoLeader
		return v
	case !leadersView(si):
		v.problem = problemFollowerView
		return v
	}
	for _, p := range c.Replicas {
		v.peers++
		if p.caughtUp() {
			v.current++
		}
		v.lag = max(v.lag, p.Lag)
	}
	switch {
	case len(c.Desired) > 0 && string(c.Desired) != "null":
		v.problem = problemPeerChange
	case v.peers != max(0, v.replicas-1):
		v.problem = problemPeerCount
	case v.current < v.peers:
		v.problem = problemFollowers
	}
	return v
}

// leadersView reports whether si was answered by the stream's leader:
// nats-server leaves the answering server out of the replicas when the
// group has a leader, so a follower's answer lists the leader among them.
func leadersView(si *streamInfo) bool {
	c := si.Cluster
	return c != nil && c.Leader != "" && !slices.ContainsFunc(c.Replicas, func(p *peerInfo) bool { return p.Name == c.Leader })
}

func allOffline(si *streamInfo) bool {
	if si.Cluster == nil || si.Cluster.Leader != "" || len(si.Cluster.Replicas) == 0 {
		return false
	}
	for _, p := range si.Cluster.Replicas {
		if !p.Offline {
			return false
		}
	}
	return true
}

// countOwn counts this server's replica of si, if it has one.
func countOwn(server string, si *streamInfo, f *Facts) {
	if server == "" || si.Cluster == nil {
		return
	}
	c := si.Cluster
	if c.Leader == server {
		f.OwnReplicas++
		f.OwnReplicasCurrent++
		return
	}
	for _, p := range c.Replicas {
		if p.Name == server {
			f.OwnReplicas++
			// Only the leader knows whether a follower caught up.
			if leadersView(si) && p.caughtUp() {
				f.OwnReplicasCurrent++
			}
			return
		}
	}
}

// countOwnDown counts this server's replica of a stream that is down.
func countOwnDown(server string, si *streamInfo, f *Facts) {
	if si.Cluster == nil {
		return
	}
	for _, p := range si.Cluster.Replicas {
		if p.Name == server {
			f.OwnReplicas++
		}
	}
}

// reasons collects the parts of Facts.Reason.
type reasons []string

func (r *reasons) addf(format string, args ...any) { *r = append(*r, fmt.Sprintf(format, args...)) }

func (r reasons) line() string { return strings.Join(r, "; ") }

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// streams words the stream problems: "2 streams with 1/2 followers
// current", grouping streams that are equally far behind.
func (r *reasons) streams(by map[problem][]streamVerdict) {
	n := func(p problem) string { return plural(len(by[p]), "stream", "streams") }
	if len(by[problemOffline]) > 0 {
		r.addf("%s offline", n(problemOffline))
	}
	if len(by[problemMissing]) > 0 {
		r.addf("%s missing from the stream list", n(problemMissing))
	}
	if len(by[problemNoLeader]) > 0 {
		r.addf("%s without a leader", n(problemNoLeader))
	}
	if len(by[problemFollowerView]) > 0 {
		r.addf("%s answered by a follower, not the leader", n(problemFollowerView))
	}
	if len(by[problemPeerChange]) > 0 {
		r.addf("%s changing peers", n(problemPeerChange))
	}
	if len(by[problemPeerCount]) > 0 {
		r.addf("%s with a wrong number of peers", n(problemPeerCount))
	}
	type progress struct{ current, expected int }
	groups := map[progress]int{}
	var maxLag uint64
	for _, v := range by[problemFollowers] {
		groups[progress{v.current, v.replicas - 1}]++
		maxLag = max(maxLag, v.lag)
	}
	keys := make([]progress, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	// The slowest first.
	slices.SortFunc(keys, func(a, b progress) int {
		return a.current*b.expected - b.current*a.expected
	})
	for _, k := range keys {
		r.addf("%s with %d/%d followers current", plural(groups[k], "stream", "streams"), k.current, k.expected)
	}
	if maxLag > 0 {
		(*r)[len(*r)-1] += fmt.Sprintf(" (max lag %d)", maxLag)
	}
}
