package sshnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Pool holds a run's connections: one per ssh target, made on first use
// and shared by every node on that target (nodes sharing a machine, each
// under its own root) and every caller, concurrently. A failed dial is
// remembered, so a node that cannot be reached is dialled once per run.
type Pool struct {
	Options Options
	// Persist, when above zero, shares connections between runs, as ssh's
	// ControlPersist: a target's connection is asked of its mux first, and
	// a run that dials directly starts one, which keeps its own connection
	// to the target for the next runs until none has used it for Persist.
	// Zero: every run dials.
	Persist time.Duration
	// MuxCommand runs the mux, a program that calls [MuxMain] (unibus
	// ssh-mux).
	MuxCommand []string
	// Warn is told, in one line, why a run does not share connections
	// (it dials directly then); nil: not told.
	Warn func(msg string)

	mu       sync.Mutex
	conns    map[string]*poolEntry
	warnOnce sync.Once
}

type poolEntry struct {
	once   sync.Once
	c      *Client
	err    error
	dialer string // the node whose use dialled, which err names
}

// Client is the connection to target for node name, dialled once.
func (p *Pool) Client(ctx context.Context, name, target string) (*Client, error) {
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[string]*poolEntry{}
	}
	e := p.conns[target]
	if e == nil {
		e = &poolEntry{}
		p.conns[target] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		e.dialer = name
		e.c, e.err = p.dial(ctx, name, target)
	})
	if e.err != nil && name != e.dialer {
		return nil, renamed(e.err, e.dialer, name)
	}
	return e.c, e.err
}

// renamed is a dial error of node from told of node to, which shares its
// host: "node n1: cannot reach ..." for n2 reads "node n2: ...".
func renamed(err error, from, to string) error {
	msg, ok := strings.CutPrefix(err.Error(), "node "+from+": ")
	if !ok {
		return err
	}
	return &renamedError{msg: "node " + to + ": " + msg, err: err}
}

type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// dial reaches target through its mux when one serves it; otherwise
// directly, starting a mux for the next runs.
func (p *Pool) dial(ctx context.Context, name, target string) (*Client, error) {
	if p.Persist <= 0 {
		return Dial(ctx, name, target, p.Options)
	}
	t, err := ParseTarget(target)
	if err != nil {
		return Dial(ctx, name, target, p.Options) // which says what is wrong
	}
	o, err := p.Options.withDefaults()
	if err != nil {
		return Dial(ctx, name, target, p.Options)
	}
	m, err := muxFilesFor(target, o)
	if err != nil {
		p.warn(err)
		return Dial(ctx, name, target, p.Options)
	}
	if c, err := dialMux(ctx, m, name, t, o); c != nil {
		return c, nil
	} else if err != nil {
		p.warn(err)
	}
	c, err := Dial(ctx, name, target, p.Options)
	if err == nil {
		if err := startMux(p.MuxCommand, m, target, p.Persist, o); err != nil {
			p.warn(err)
		}
	}
	return c, err
}

// warn says once per run why connections are not shared.
func (p *Pool) warn(err error) {
	if p.Warn == nil {
		return
	}
	p.warnOnce.Do(func() {
		p.Warn(fmt.Sprintf("not sharing SSH connections (UNIBUS_SSH_PERSIST): %v; connecting directly", err))
	})
}

// Close closes every connection the pool made.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, e := range p.conns {
		if e.c != nil {
			errs = append(errs, e.c.Close())
		}
	}
	p.conns = nil
	return errors.Join(errs...)
}
