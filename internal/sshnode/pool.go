package sshnode

import (
	"context"
	"errors"
	"sync"
)

// Pool holds a run's connections: one per ssh target, made on first use
// and shared by every node on that target (nodes sharing a machine, each
// under its own root) and every caller, concurrently. A failed dial is
// remembered, so a node that cannot be reached is dialled once per run.
type Pool struct {
	Options Options

	mu    sync.Mutex
	conns map[string]*poolEntry
}

type poolEntry struct {
	once sync.Once
	c    *Client
	err  error
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
	e.once.Do(func() { e.c, e.err = Dial(ctx, name, target, p.Options) })
	return e.c, e.err
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
