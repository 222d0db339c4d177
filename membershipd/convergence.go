package membershipd

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// clusterHealth is the cluster block of /healthz: counts only, never a
// stream or server name (the public endpoint must not map the deployment).
type clusterHealth struct {
	Peers             int    `json:"peers"` // other servers this node has routes to
	MetaLeader        bool   `json:"meta_leader_known"`
	Streams           int    `json:"streams"`
	ReplicatedStreams int    `json:"replicated_streams"`
	StreamsWithLeader int    `json:"replicated_streams_with_leader"`
	FollowersCurrent  int    `json:"followers_current"`
	FollowersExpected int    `json:"followers_expected"`
	MaxLag            uint64 `json:"max_lag"`
	Converged         bool   `json:"converged"`
	Error             string `json:"error,omitempty"` // a reason code, see readiness.go
	listErr           error  // why the stream list is incomplete: for the log, it can name a stream
}

// convergence asks JetStream for the state of every stream. The stream
// list is gathered by the meta leader from each stream's leader, which is
// the only server that knows whether its followers are current; a follower's
// own view of its peers can be stale.
func convergence(ctx context.Context, srv *server.Server, js jetstream.JetStream) clusterHealth {
	var h clusterHealth
	if rz, err := srv.Routez(nil); err == nil {
		seen := map[string]bool{}
		for _, r := range rz.Routes {
			seen[r.RemoteID] = true
		}
		h.Peers = len(seen)
	}
	if jsz, err := srv.Jsz(nil); err == nil && jsz.Meta != nil {
		h.MetaLeader = jsz.Meta.Leader != ""
	}
	if !h.MetaLeader {
		h.Error = reasonQuorumLost
		return h
	}
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		h.Streams++
		if info.Config.Replicas <= 1 {
			continue
		}
		h.ReplicatedStreams++
		h.FollowersExpected += info.Config.Replicas - 1
		if info.Cluster == nil || info.Cluster.Leader == "" {
			continue
		}
		h.StreamsWithLeader++
		for _, p := range info.Cluster.Replicas {
			if p.Current && !p.Offline {
				h.FollowersCurrent++
			}
			h.MaxLag = max(h.MaxLag, p.Lag)
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		h.Error, h.listErr = reasonNotConverged, err
		return h
	}
	h.Converged = h.StreamsWithLeader == h.ReplicatedStreams && h.FollowersCurrent == h.FollowersExpected
	switch {
	case h.StreamsWithLeader < h.ReplicatedStreams:
		h.Error = reasonQuorumLost
	case !h.Converged:
		h.Error = reasonNotConverged
	}
	return h
}

// notConverged explains, in counts, why h is not converged.
func (h clusterHealth) notConverged() error {
	switch {
	case !h.MetaLeader:
		return &notReadyError{code: reasonQuorumLost, msg: "no JetStream meta leader (the cluster is forming, or fewer than a quorum of servers are reachable)"}
	case h.listErr != nil:
		return &notReadyError{code: reasonNotConverged, msg: "stream list incomplete", cause: h.listErr}
	case h.StreamsWithLeader < h.ReplicatedStreams:
		return &notReadyError{code: reasonQuorumLost, msg: fmt.Sprintf("%d of %d replicated streams have no leader", h.ReplicatedStreams-h.StreamsWithLeader, h.ReplicatedStreams)}
	case h.FollowersCurrent < h.FollowersExpected:
		return &notReadyError{code: reasonNotConverged, msg: fmt.Sprintf("followers current %d/%d (max lag %d)", h.FollowersCurrent, h.FollowersExpected, h.MaxLag)}
	}
	return nil
}
