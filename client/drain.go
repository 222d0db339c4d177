package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// DrainOptions says what [Client.Drain] asks of the node.
type DrainOptions struct {
	// DryRun changes nothing: the answer says what would move, what could
	// not, and whether losing the node now would leave any group below
	// quorum (DrainReport.RestartSafe).
	DryRun bool
	// Force moves leaders even when a group has no other current replica
	// or the node's loss would cost a quorum. It costs availability.
	Force bool
	// LameDuck, once every leadership has moved, puts the node's NATS in
	// lame duck after the answer: its clients reconnect elsewhere and it
	// serves no data plane until it is restarted. It is the last step
	// before the restart.
	LameDuck bool
	// Timeout bounds the drain on the server (0: its default, 20s; at
	// most 25s, inside the client's HTTP timeout). The answer comes
	// before it passes.
	Timeout time.Duration
}

// DrainGroup is one Raft group in a drain answer: Kind "stream",
// "consumer" or "meta" (the JetStream meta group, with no names).
type DrainGroup struct {
	Kind     string `json:"kind"`
	Account  string `json:"account,omitempty"`
	Stream   string `json:"stream,omitempty"`
	Consumer string `json:"consumer,omitempty"`
	Replicas int    `json:"replicas,omitempty"`
	Leader   string `json:"leader,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// DrainReport is what a node answers to a drain.
type DrainReport struct {
	Node   string `json:"node"`
	DryRun bool   `json:"dry_run"`
	// Done: every leadership the node held is confirmed on another server
	// (a dry run: nothing is stuck and RestartSafe).
	Done bool `json:"done"`
	// RestartSafe: losing the node leaves every group it is part of with a
	// quorum.
	RestartSafe bool  `json:"restart_safe"`
	Replicas    int   `json:"replicas_here"`
	Leading     int   `json:"leading"`
	MetaLeader  bool  `json:"meta_leader"`
	LameDuck    bool  `json:"lame_duck"`
	ElapsedMS   int64 `json:"elapsed_ms"`
	// Moved are the leaderships moved off (a dry run: to move), with their
	// new leader; Stuck those that cannot or did not move; AtRisk the
	// groups that would fall below quorum without the node.
	Moved  []DrainGroup `json:"moved"`
	Stuck  []DrainGroup `json:"stuck"`
	AtRisk []DrainGroup `json:"at_risk"`
}

// DrainRefusedError is a drain the node refused or could not finish
// because of the cluster's state: Code is "would_lose_quorum",
// "leader_cannot_move" or "not_moved", and Report says which groups.
type DrainRefusedError struct {
	*APIError
	Report DrainReport
}

func (e *DrainRefusedError) Unwrap() error { return e.APIError }

// Drain asks the node behind c (admins only) to move every stream,
// consumer and meta leadership it holds to other nodes before a restart,
// and confirms the new leaders. A refusal, made before anything moved
// unless Force, is a *DrainRefusedError with the report.
//
// A rollout calls it twice per node: first with DryRun to refuse a restart
// that would cost quorum (DrainReport.RestartSafe), then, right before the
// restart, with LameDuck.
func (c *Client) Drain(ctx context.Context, o DrainOptions) (DrainReport, error) {
	var rep DrainReport
	err := c.doJSON(ctx, "POST", "/v1/admin/drain", map[string]any{
		"dry_run": o.DryRun, "force": o.Force, "lame_duck": o.LameDuck, "timeout_ms": o.Timeout.Milliseconds()}, &rep)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		var body struct {
			Report *DrainReport `json:"report"`
		}
		if json.Unmarshal(apiErr.body, &body) == nil && body.Report != nil {
			return *body.Report, &DrainRefusedError{APIError: apiErr, Report: *body.Report}
		}
	}
	return rep, err
}
