package converge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata are answers recorded from a real three-node cluster
// (membershipd's TestRecordConvergenceAnswers): converged, seen from the
// meta leader and from a follower, and with one server stopped. The other
// cases edit a recording where a real cluster cannot be caught in the state
// on demand (a follower lagging, a leaderless group with the meta group
// up); each edit says what it does.

func load(t *testing.T, name string) Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

type object = map[string]any

func decode(t *testing.T, raw json.RawMessage) object {
	t.Helper()
	var v object
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func encode(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nameOf(si object) string { return si["config"].(object)["name"].(string) }

// editList edits the list's entry for stream.
func editList(t *testing.T, in *Input, stream string, edit func(si object)) {
	t.Helper()
	found := false
	for i, raw := range in.StreamList {
		page := decode(t, raw)
		for _, s := range page["streams"].([]any) {
			if si := s.(object); nameOf(si) == stream {
				edit(si)
				found = true
			}
		}
		in.StreamList[i] = encode(t, page)
	}
	if !found {
		t.Fatalf("no list entry for %s", stream)
	}
}

// editInfo edits the leader's stream info of stream.
func editInfo(t *testing.T, in *Input, stream string, edit func(si object)) {
	t.Helper()
	raw, ok := in.StreamInfo[stream]
	if !ok {
		t.Fatalf("no stream info for %s", stream)
	}
	si := decode(t, raw)
	edit(si)
	in.StreamInfo[stream] = encode(t, si)
}

// editBoth edits the list's entry and the stream info alike.
func editBoth(t *testing.T, in *Input, stream string, edit func(si object)) {
	t.Helper()
	editList(t, in, stream, edit)
	editInfo(t, in, stream, edit)
}

func cluster(si object) object { return si["cluster"].(object) }

func replicas(si object) []any { return cluster(si)["replicas"].([]any) }

// follower sets the first follower in si's replicas.
func follower(si object, set object) {
	p := replicas(si)[0].(object)
	for k, v := range set {
		p[k] = v
	}
}

const kvMembers = "KV_unibus_members"

func decide(t *testing.T, in Input) Facts {
	t.Helper()
	f := Decide(in)
	t.Logf("%q %+v", f.Reason, f)
	for _, leak := range []string{"KV_", "OBJ_", "CONVERGE", "unibus", "n1", "n2", "n3", "$"} {
		if strings.Contains(f.Reason, leak) {
			t.Errorf("reason %q names %q: it is public", f.Reason, leak)
		}
	}
	return f
}

func wantNotConverged(t *testing.T, f Facts, reason string) {
	t.Helper()
	if f.Converged {
		t.Errorf("converged; want not converged with %q", reason)
	}
	if !strings.Contains(f.Reason, reason) {
		t.Errorf("reason %q; want it to say %q", f.Reason, reason)
	}
}

func TestConverged(t *testing.T) {
	for _, name := range []string{"converged_meta_leader.json", "converged_follower.json"} {
		t.Run(name, func(t *testing.T) {
			f := decide(t, load(t, name))
			if !f.Converged || f.Reason != "" {
				t.Fatalf("not converged: %q", f.Reason)
			}
			if f.Streams != 8 || f.StreamsConverged != 8 || f.ReplicatedStreams != 7 || f.StreamsWithLeader != 7 ||
				f.FollowersCurrent != 14 || f.FollowersExpected != 14 || f.Offline != 0 || f.Missing != 0 ||
				f.MetaServersCurrent != 3 || f.MetaServersExpected != 3 || !f.MetaLeaderKnown || !f.HealthzOK ||
				f.OwnReplicas == 0 || f.OwnReplicasCurrent != f.OwnReplicas || len(f.Names) != 0 {
				t.Errorf("counts: %+v", f)
			}
		})
	}
}

// A group whose leader is gone answers from any member, with no leader
// and the member itself among the replicas.
func TestLeaderlessStream(t *testing.T) {
	in := load(t, "converged_meta_leader.json")
	editBoth(t, &in, kvMembers, func(si object) {
		delete(cluster(si), "leader")
		cluster(si)["replicas"] = append(replicas(si), object{"name": "n9", "current": true, "peer": "x"})
	})
	f := decide(t, in)
	wantNotConverged(t, f, "1 stream without a leader")
	if f.StreamsWithLeader != 6 || f.ReplicatedStreams != 7 || f.StreamsConverged != 7 {
		t.Errorf("counts: %+v", f)
	}
}

func TestLaggingFollower(t *testing.T) {
	for name, set := range map[string]object{
		// Lag alone, though the peer still says current: nats-server's
		// current means seen lately and caught up, lag is the log.
		"lag":         {"lag": 12},
		"not current": {"current": false},
		"pending":     {"pending": true},
	} {
		t.Run(name, func(t *testing.T) {
			in := load(t, "converged_meta_leader.json")
			editBoth(t, &in, kvMembers, func(si object) { follower(si, set) })
			f := decide(t, in)
			wantNotConverged(t, f, "1 stream with 1/2 followers current")
			if f.FollowersCurrent != 13 || f.FollowersExpected != 14 || f.Slowest.FollowersCurrent != 1 || f.Slowest.FollowersExpected != 2 {
				t.Errorf("counts: %+v", f)
			}
		})
	}
}

// followerAnswer is what a follower of si's group says: the leader among
// its peers, current, and itself left out.
func followerAnswer(si object) {
	c := cluster(si)
	rs := replicas(si)
	c["replicas"] = append(rs[1:], object{"name": c["leader"], "current": true, "peer": "leader"})
}

func TestFollowersStaleView(t *testing.T) {
	t.Run("the leader's info wins over the list", func(t *testing.T) {
		// The list says every follower current; the leader, asked
		// afterwards, says one is not.
		in := load(t, "converged_meta_leader.json")
		editInfo(t, &in, kvMembers, func(si object) { follower(si, object{"current": false, "lag": 7}) })
		wantNotConverged(t, decide(t, in), "1 stream with 1/2 followers current (max lag 7)")
	})
	t.Run("a follower's info is not the leader's", func(t *testing.T) {
		// The leader (through the list) says a follower is behind; an
		// answer from a follower says all its peers are current.
		in := load(t, "converged_meta_leader.json")
		editList(t, &in, kvMembers, func(si object) { follower(si, object{"current": false}) })
		editInfo(t, &in, kvMembers, func(si object) {
			follower(si, object{"current": false})
			followerAnswer(si)
			follower(si, object{"current": true})
		})
		wantNotConverged(t, decide(t, in), "1 stream with 1/2 followers current")
	})
	t.Run("only a follower answered", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		editBoth(t, &in, kvMembers, followerAnswer)
		wantNotConverged(t, decide(t, in), "1 stream answered by a follower")
	})
}

func TestStreamMissingFromList(t *testing.T) {
	t.Run("listed missing", func(t *testing.T) {
		// The meta leader did not hear from the stream's leader in time:
		// no entry, its name in missing.
		in := load(t, "converged_meta_leader.json")
		page := decode(t, in.StreamList[0])
		var kept []any
		for _, s := range page["streams"].([]any) {
			if nameOf(s.(object)) != kvMembers {
				kept = append(kept, s)
			}
		}
		page["streams"], page["missing"] = kept, []any{kvMembers}
		in.StreamList[0] = encode(t, page)
		delete(in.StreamInfo, kvMembers)
		f := decide(t, in)
		wantNotConverged(t, f, "1 stream missing from the stream list")
		if f.Streams != 8 || f.Missing != 1 || f.StreamsConverged != 7 {
			t.Errorf("counts: %+v", f)
		}
	})
	t.Run("counted, not listed", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		page := decode(t, in.StreamList[0])
		page["total"] = 9.0
		in.StreamList[0] = encode(t, page)
		f := decide(t, in)
		wantNotConverged(t, f, "1 stream missing from the stream list")
		if f.Streams != 9 || f.Missing != 1 {
			t.Errorf("counts: %+v", f)
		}
	})
	t.Run("reported offline", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		page := decode(t, in.StreamList[0])
		page["offline"] = object{"NEW_FEATURE": "unsupported by this server version"}
		page["total"] = 9.0
		in.StreamList[0] = encode(t, page)
		f := decide(t, in)
		wantNotConverged(t, f, "1 stream offline")
		if f.Streams != 9 || f.Offline != 1 || f.Missing != 0 {
			t.Errorf("counts: %+v", f)
		}
	})
	t.Run("list unanswered", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		in.StreamList, in.ListError = nil, "context deadline exceeded"
		wantNotConverged(t, decide(t, in), "the stream list did not answer")
	})
}

// One of three servers stopped, recorded from the meta leader: it held
// the R1 stream and a follower of every R3 stream.
func TestR1StreamOnDeadNode(t *testing.T) {
	f := decide(t, load(t, "one_server_down.json"))
	wantNotConverged(t, f, "1 stream offline")
	if f.Streams != 8 || f.Offline != 1 || f.Missing != 0 || f.StreamsConverged != 0 ||
		f.FollowersCurrent != 7 || f.FollowersExpected != 14 || f.StreamsWithLeader != 7 ||
		f.MetaServersCurrent != 2 || f.MetaServersExpected != 3 {
		t.Errorf("counts: %+v", f)
	}
	for _, want := range []string{"7 streams with 1/2 followers current", "meta group 2/3 servers current"} {
		if !strings.Contains(f.Reason, want) {
			t.Errorf("reason %q; want it to say %q", f.Reason, want)
		}
	}
	if !strings.Contains(strings.Join(f.Names, ","), "stream CONVERGE_R1") {
		t.Errorf("names for the log %v lack the R1 stream", f.Names)
	}
}

func TestMetaPeerBehind(t *testing.T) {
	editMeta := func(t *testing.T, in *Input, edit func(m object)) {
		m := decode(t, in.Meta)
		edit(m)
		in.Meta = encode(t, m)
	}
	t.Run("lagging, seen by the leader", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		editMeta(t, &in, func(m object) { m["replicas"].([]any)[0].(object)["lag"] = 4 })
		f := decide(t, in)
		wantNotConverged(t, f, "meta group 2/3 servers current")
		if f.MetaServersCurrent != 2 || !f.MetaLeaderView {
			t.Errorf("counts: %+v", f)
		}
	})
	t.Run("offline, seen by a follower", func(t *testing.T) {
		in := load(t, "converged_follower.json")
		editMeta(t, &in, func(m object) {
			for _, p := range m["replicas"].([]any) {
				if p := p.(object); p["name"] != m["leader"] {
					p["offline"] = true
				}
			}
		})
		wantNotConverged(t, decide(t, in), "meta group 2/3 servers current")
	})
	t.Run("leader not heard, seen by a follower", func(t *testing.T) {
		in := load(t, "converged_follower.json")
		editMeta(t, &in, func(m object) {
			for _, p := range m["replicas"].([]any) {
				if p := p.(object); p["name"] == m["leader"] {
					p["current"] = false
				}
			}
		})
		wantNotConverged(t, decide(t, in), "meta group 2/3 servers current")
	})
	t.Run("a server short", func(t *testing.T) {
		in := load(t, "converged_meta_leader.json")
		editMeta(t, &in, func(m object) {
			m["cluster_size"] = 2
			m["replicas"] = m["replicas"].([]any)[:1]
		})
		wantNotConverged(t, decide(t, in), "meta group has 2 of 3 servers")
	})
	t.Run("no leader", func(t *testing.T) {
		in := load(t, "converged_follower.json")
		editMeta(t, &in, func(m object) { delete(m, "leader") })
		f := decide(t, in)
		wantNotConverged(t, f, "no meta leader")
		if f.MetaLeaderKnown {
			t.Errorf("counts: %+v", f)
		}
	})
}

func TestOwnReplicaNotCurrent(t *testing.T) {
	in := load(t, "converged_meta_leader.json")
	// This server becomes the follower the leader sees behind.
	var own string
	editInfo(t, &in, kvMembers, func(si object) {
		own = replicas(si)[0].(object)["name"].(string)
		follower(si, object{"current": false})
	})
	in.Server = own
	f := decide(t, in)
	wantNotConverged(t, f, "own replicas")
	if f.OwnReplicasCurrent != f.OwnReplicas-1 {
		t.Errorf("counts: %+v", f)
	}
}

func TestHealthzFailing(t *testing.T) {
	in := load(t, "converged_meta_leader.json")
	in.Healthz = encode(t, object{"status": "unavailable", "status_code": 503,
		"error": "JetStream stream '$G > KV_unibus_members' is not current"})
	f := decide(t, in)
	wantNotConverged(t, f, "nats-server health check failing")
	if f.HealthzOK || !strings.Contains(strings.Join(f.Names, ","), "KV_unibus_members") {
		t.Errorf("healthz ok %v, names for the log %v", f.HealthzOK, f.Names)
	}
}

func TestPeerChangeInProgress(t *testing.T) {
	in := load(t, "converged_meta_leader.json")
	editInfo(t, &in, kvMembers, func(si object) {
		cluster(si)["desired"] = object{"created": "2026-12-01T10:00:00Z", "replicas": []any{}}
	})
	wantNotConverged(t, decide(t, in), "1 stream changing peers")
}

func TestNextOffset(t *testing.T) {
	for _, c := range []struct {
		page string
		next int
		more bool
	}{
		{`{"total":300,"offset":0,"limit":256,"streams":[]}`, 256, true},
		{`{"total":300,"offset":256,"limit":256,"streams":[]}`, 512, false},
		{`{"error":{"code":503,"description":"x"}}`, 0, false},
	} {
		if next, more := NextOffset([]byte(c.page)); next != c.next || more != c.more {
			t.Errorf("%s: %d %v; want %d %v", c.page, next, more, c.next, c.more)
		}
	}
}
