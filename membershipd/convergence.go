package membershipd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/unibus/unibus/internal/converge"
)

// clusterHealth is the cluster block of /healthz: counts only, never a
// stream or server name (the public endpoint must not map the deployment).
// The counts are [converge.Facts]; the rollout gate reads them back.
type clusterHealth struct {
	Peers int `json:"peers"` // other servers this node has routes to
	converge.Facts
	Error string `json:"error,omitempty"` // a reason code, see readiness.go
}

// convergence gathers the raw JetStream answers [converge.Decide] judges,
// through the daemon's own in-process connection and the server itself.
func convergence(ctx context.Context, srv *server.Server, nc *nats.Conn, expectedServers int) clusterHealth {
	var h clusterHealth
	if rz, err := srv.Routez(nil); err == nil {
		seen := map[string]bool{}
		for _, r := range rz.Routes {
			seen[r.RemoteID] = true
		}
		h.Peers = len(seen)
	}
	h.Facts = converge.Decide(gatherAnswers(ctx, srv, nc, expectedServers))
	switch {
	case h.Converged:
	case !h.MetaLeaderKnown || h.StreamsWithLeader < h.ReplicatedStreams:
		h.Error = reasonQuorumLost
	default:
		h.Error = reasonNotConverged
	}
	return h
}

// gatherAnswers asks for every answer the decision needs. The stream list
// is answered by the meta leader, which asks each stream's leader; the
// stream info by the stream's leader. Both are raw: nats.go's lister drops
// the list's offline and missing streams.
func gatherAnswers(ctx context.Context, srv *server.Server, nc *nats.Conn, expectedServers int) converge.Input {
	in := converge.Input{Server: srv.Name(), StreamInfo: map[string]json.RawMessage{}}
	if jsz, err := srv.Jsz(nil); err == nil && jsz.Meta != nil {
		in.Meta, _ = json.Marshal(jsz.Meta)
		// The configured routes may be a subset of the cluster (seeds);
		// the meta group knows every server that ever joined.
		in.ExpectedServers = max(expectedServers, jsz.Meta.Size)
		if jsz.Meta.Leader == "" {
			// Without a meta leader the list is never answered: do not
			// spend the request's time waiting for it.
			in.ListError = "no meta leader"
		}
	}
	// Streams and consumers included (JSEnabledOnly false): a replica
	// this server holds that is not current fails it.
	in.Healthz, _ = json.Marshal(srv.Healthz(&server.HealthzOptions{}))
	if in.ListError != "" {
		return in
	}
	for offset := 0; ; {
		req, _ := json.Marshal(map[string]int{"offset": offset})
		msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LIST", req)
		if err != nil {
			in.ListError = fmt.Sprintf("page at offset %d: %v", offset, err)
			return in
		}
		in.StreamList = append(in.StreamList, msg.Data)
		next, more := converge.NextOffset(msg.Data)
		if !more {
			break
		}
		offset = next
	}
	for _, name := range converge.Listed(in.StreamList) {
		// A leader that does not answer within a second is as good as
		// none; it must not use up the rest of the streams' time.
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		msg, err := nc.RequestWithContext(ictx, "$JS.API.STREAM.INFO."+name, nil)
		cancel()
		if err != nil {
			// The list's entry, gathered from the same leader, stands in.
			continue
		}
		in.StreamInfo[name] = msg.Data
	}
	return in
}

// notConverged explains, in counts, why h is not converged.
func (h clusterHealth) notConverged() error {
	if h.Converged {
		return nil
	}
	code := h.Error
	if code == "" {
		code = reasonNotConverged
	}
	return &notReadyError{code: code, msg: h.Reason, cause: newNamesError(h.Names)}
}

// namesError carries the names behind a reason to the log.
type namesError []string

func (n namesError) Error() string { return fmt.Sprint([]string(n)) }

func newNamesError(names []string) error {
	if len(names) == 0 {
		return nil
	}
	return namesError(names)
}
