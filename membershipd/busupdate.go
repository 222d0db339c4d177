package membershipd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// busUpdates carries membership changes to the running data plane, and
// fails closed: a change is requested (by a handler after its store write,
// by the cluster's membership watch, by a grant), and one goroutine applies
// the latest state, retrying with backoff until it succeeds. The update
// never runs on an HTTP request's context, so a client that hangs up cannot
// cancel a revocation; while one is pending, /readyz says so.
type busUpdates struct {
	mu        sync.Mutex
	requested uint64        // generation asked for
	applied   uint64        // generation in force on the bus
	appliedCh chan struct{} // closed and replaced at each apply
	lastErr   error
	wake      chan struct{} // one pending token
}

func newBusUpdates() *busUpdates {
	return &busUpdates{appliedCh: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// request asks for the current store state to be applied and returns the
// generation that will include it.
func (b *busUpdates) request() uint64 {
	b.mu.Lock()
	b.requested++
	gen := b.requested
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // an apply is already due; it reads the latest state
	}
	return gen
}

// wait blocks until generation gen is applied, ctx ends, or timeout passes;
// it reports whether gen is in force.
func (b *busUpdates) wait(ctx context.Context, gen uint64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		b.mu.Lock()
		done, ch := b.applied >= gen, b.appliedCh
		b.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		}
	}
}

// pending reports a requested change not yet in force, with the last
// failure if the last attempt failed.
func (b *busUpdates) pending() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied < b.requested, b.lastErr
}

func (b *busUpdates) markApplied(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen > b.applied {
		b.applied = gen
	}
	b.lastErr = nil
	close(b.appliedCh)
	b.appliedCh = make(chan struct{})
}

func (b *busUpdates) markFailed(err error) {
	b.mu.Lock()
	b.lastErr = err
	b.mu.Unlock()
}

// busReloadFault, when set (by tests only), makes a bus user reload of the
// named node fail: the way to prove a failed revocation is retried until
// it lands.
var busReloadFault atomic.Pointer[func(node string) error]

// errBusUpdatePending is the /readyz reason while a change waits.
var errBusUpdatePending = errors.New("a bus permission update is pending")

// busChanged requests that the store's membership be applied to the bus
// and waits, bounded, for it on this node, so that a 200 for a removal
// normally means the member is already cut off here. The change stays
// requested if the wait ends first: it is retried until it applies.
func (d *Daemon) busChanged(ctx context.Context) {
	gen := d.bus.request()
	d.bus.wait(ctx, gen, 2*time.Second)
}

// applyBusUpdates is the one goroutine that reloads bus users, until ctx
// ends (shutdown).
func (d *Daemon) applyBusUpdates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.bus.wake:
		}
		for attempt := 0; ; attempt++ {
			d.bus.mu.Lock()
			gen := d.bus.requested
			d.bus.mu.Unlock()
			err := d.reloadBusUsers(ctx)
			if err == nil {
				d.bus.markApplied(gen)
				break
			}
			d.bus.markFailed(err)
			if attempt%10 == 0 {
				d.log.Error("could not apply a membership change to the bus; retrying until it applies", "attempt", attempt+1, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
			}
		}
	}
}

// reloadBusUsers applies the store's membership to the running server: it
// reloads its users, re-checks every connected client, and drops the
// subscriptions a client is no longer allowed; other clients stay
// connected. Without enforce, or with an external NATS (which has its own
// authorization), there is nothing to apply.
func (d *Daemon) reloadBusUsers(ctx context.Context) error {
	if d.cfg.BusAuth != BusAuthEnforce {
		return nil
	}
	e, ok := d.dataPlane().(*embedded)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	daemonAcc, membersAcc := e.accounts()
	users, err := d.loadBusUsers(ctx, daemonAcc, membersAcc)
	if err != nil {
		return err
	}
	return e.setUsers(users)
}
