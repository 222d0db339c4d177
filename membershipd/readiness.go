package membershipd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a node is not ready: the fixed set /healthz and /readyz show.
// Both endpoints are public, so they carry one of these codes and a message
// of fixed text or counts, never an error's text: that can name a bucket,
// a stream or a subject.
const (
	reasonNATSStarting         = "nats_starting"
	reasonJetStreamStarting    = "jetstream_starting"
	reasonJetStreamDisabled    = "jetstream_disabled"
	reasonQuorumLost           = "quorum_lost"
	reasonNotConverged         = "not_converged"
	reasonControlStoreStarting = "control_store_starting"
	reasonBusUpdatePending     = "bus_update_pending"
	reasonLameDuck             = "lame_duck"
)

// notReadyError is a readiness failure with its public face (code and safe
// message) apart from its cause, which only the log may show.
type notReadyError struct {
	code, msg string
	cause     error
}

func (e *notReadyError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *notReadyError) Unwrap() error { return e.cause }

// publicReason is err as the public endpoints show it. An error that is not
// a notReadyError comes from the data plane's own checks (server not
// running, not connected): NATS is not serving yet.
func publicReason(err error) (code, msg string) {
	var nr *notReadyError
	if errors.As(err, &nr) {
		return nr.code, nr.msg
	}
	return reasonNATSStarting, "NATS is not serving yet"
}

// healthTTL is how long one computation of the node's state serves
// /healthz and /readyz. On a cluster node it asks every stream's leader
// for its state and the KV bucket for its replicas: the public endpoints
// must not let a request rate become that much cluster traffic.
const healthTTL = time.Second

// healthSnapshot is one computation of what /healthz and /readyz report.
type healthSnapshot struct {
	done     time.Time
	notReady error // nil when ready
	posture  posture
	nats     *dataPlaneHealth
	// servedBefore: the node was ready at some point since it started.
	servedBefore bool
	// seq numbers the computations, so a client counting consecutive
	// samples (the rollout gate) counts each computation once.
	seq int64
}

// healthCache holds the latest snapshot; concurrent requests that find it
// stale share one computation.
type healthCache struct {
	mu       sync.Mutex
	snap     *healthSnapshot
	inflight chan struct{} // closed when the computation under way is done
	runs     atomic.Int64  // computations, for tests
	served   atomic.Bool   // ready at least once
}

// healthSnapshot returns a snapshot at most healthTTL old, computing it if
// needed. The computation runs apart from any request's context, so a
// client hanging up neither cancels nor repeats it; it is bounded by its
// own timeout.
func (d *Daemon) healthSnapshot() *healthSnapshot {
	c := &d.health
	c.mu.Lock()
	// The age counts from the end of the last computation, so even a slow
	// one is followed by a second of rest.
	if c.snap != nil && time.Since(c.snap.done) < healthTTL {
		s := c.snap
		c.mu.Unlock()
		return s
	}
	if c.inflight == nil {
		done := make(chan struct{})
		c.inflight = done
		go func() {
			s := d.computeHealth()
			c.mu.Lock()
			c.snap, c.inflight = s, nil
			c.mu.Unlock()
			close(done)
		}()
	}
	wait := c.inflight
	c.mu.Unlock()
	<-wait
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

func (d *Daemon) computeHealth() *healthSnapshot {
	seq := d.health.runs.Add(1)
	// The meta leader waits up to 4s for a stream's leader before it lists
	// the stream as missing: the bound leaves room for that answer.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	s := &healthSnapshot{posture: d.posture(ctx), notReady: d.ready(ctx), seq: seq}
	if dp := d.dataPlane(); dp != nil {
		nh := dp.health(ctx)
		s.nats = &nh
		// Without a meta leader JetStream stops answering: the cluster
		// block of the same snapshot has the cause.
		var nr *notReadyError
		if c := nh.Cluster; c != nil && !c.MetaLeaderKnown && errors.As(s.notReady, &nr) && nr.code == reasonJetStreamStarting {
			s.notReady = c.notConverged()
		}
	}
	if s.notReady == nil {
		d.health.served.Store(true)
	}
	s.servedBefore = d.health.served.Load()
	s.done = time.Now()
	return s
}

func (d *Daemon) ready(ctx context.Context) error {
	dp := d.dataPlane()
	if dp == nil {
		return &notReadyError{code: reasonNATSStarting, msg: "NATS is starting"}
	}
	if d.lameDuck.Load() {
		return &notReadyError{code: reasonLameDuck, msg: "this node is in lame duck after a drain: restart it"}
	}
	if err := dp.ready(ctx); err != nil {
		return err
	}
	if !d.controlReady() {
		// The store's last error (it names buckets) is in the log, where
		// the store's retry loop writes it.
		return &notReadyError{code: reasonControlStoreStarting, msg: "the control-plane store is not ready yet", cause: d.cs.err()}
	}
	// A membership change that failed to reach the bus and is being
	// retried: until it lands, a removed member may still be connected.
	if pending, err := d.bus.pending(); pending && err != nil {
		return &notReadyError{code: reasonBusUpdatePending, msg: errBusUpdatePending.Error(), cause: err}
	}
	return nil
}
