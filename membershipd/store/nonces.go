package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// nonceLog is the single-node replay guard. A map of live nonces answers
// "seen before?" at once, and the nonces table in nonces.db makes each one
// durable before its request is answered, so a restart forgets none.
//
// Every signed request writes a nonce, and a SQLite transaction each would
// cost more than the request's signature check. So writes are grouped: a
// commit waits up to commitLinger for company, then writes every pending
// nonce as one INSERT; each request waits for the commit carrying its nonce.
// Under load that trades half a millisecond of latency for a several-fold cut in
// write cost per request.
type nonceLog struct {
	db *sql.DB

	mu      sync.Mutex
	live    map[string]int64 // key -> expiry, Unix seconds
	pending []nonceWrite
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

type nonceWrite struct {
	key     string
	expires int64
	done    chan error
}

// commitLinger is how long a commit waits for more nonces to join it.
const commitLinger = 500 * time.Microsecond

// maxNonceRows bounds one INSERT: two parameters a row, well under SQLite's
// parameter limit.
const maxNonceRows = 500

func openNonceLog(ctx context.Context, db *sql.DB, now time.Time) (*nonceLog, error) {
	l := &nonceLog{db: db, live: map[string]int64{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	rows, err := db.QueryContext(ctx, `SELECT key, expires FROM nonces WHERE expires >= ?`, now.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var exp int64
		if err := rows.Scan(&k, &exp); err != nil {
			return nil, err
		}
		l.live[k] = exp
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

// use records key, or returns ErrReplay; it returns once key is written.
func (l *nonceLog) use(ctx context.Context, key string, expires time.Time) error {
	done := make(chan error, 1)
	l.mu.Lock()
	if _, seen := l.live[key]; seen {
		l.mu.Unlock()
		return ErrReplay
	}
	l.live[key] = expires.Unix()
	l.pending = append(l.pending, nonceWrite{key, expires.Unix(), done})
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // a commit is already due
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The nonce stays taken: it may still be committed, and a request
		// that gave up must not become replayable.
		return ctx.Err()
	}
}

func (l *nonceLog) commitLoop() {
	defer close(l.stopped)
	for {
		select {
		case <-l.kick:
			time.Sleep(commitLinger)
			l.commit()
		case <-l.stop:
			l.commit()
			return
		}
	}
}

func (l *nonceLog) commit() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), maxNonceRows)
		err := l.insert(batch[:n])
		if err != nil {
			// Not durable, so not accepted: forget them and fail the requests.
			l.mu.Lock()
			for _, w := range batch[:n] {
				delete(l.live, w.key)
			}
			l.mu.Unlock()
			err = fmt.Errorf("record nonces: %w", err)
		}
		for _, w := range batch[:n] {
			w.done <- err
		}
		batch = batch[n:]
	}
}

func (l *nonceLog) insert(batch []nonceWrite) error {
	args := make([]any, 0, 2*len(batch))
	for _, w := range batch {
		args = append(args, w.key, w.expires)
	}
	q := `INSERT OR IGNORE INTO nonces (key, expires) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?), ", len(batch)), ", ")
	_, err := l.db.Exec(q, args...)
	return err
}

// purge forgets nonces that expired before now, in memory and on disk.
func (l *nonceLog) purge(ctx context.Context, now time.Time) (int64, error) {
	l.mu.Lock()
	for k, exp := range l.live {
		if exp < now.Unix() {
			delete(l.live, k)
		}
	}
	l.mu.Unlock()
	res, err := l.db.ExecContext(ctx, `DELETE FROM nonces WHERE expires < ?`, now.Unix())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// close commits what is pending and stops.
func (l *nonceLog) close() {
	close(l.stop)
	<-l.stopped
}
