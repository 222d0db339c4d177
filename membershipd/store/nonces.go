package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// nonceLog is the single-node replay guard. Sets of live nonces in memory
// answer "seen before?" at once, and nonces.db makes each nonce durable
// before its request is answered, so a restart forgets none.
//
// Every signed request writes a nonce, and a SQLite transaction each would
// cost about half a request's signature check. So writes are grouped: one
// commit writes every pending nonce as one row of nonce_batches (the keys
// as a JSON array, under the latest expiry among them), and each request
// waits for the commit carrying its nonce.
//
// A row per commit appends to one B-tree and costs the same whatever the
// batch size, where a row per nonce keyed by the random nonce dirtied a
// page a nonce: that was most of a request's cost besides its verify.
// Lookups never read the table: it is read once, at open.
type nonceLog struct {
	db *sql.DB

	mu sync.Mutex
	// cur and prev are generations of live nonces. purge drops prev once
	// all of it has expired and starts a new cur, so forgetting is O(1)
	// under the lock, not a walk over a few minutes of traffic.
	cur, prev       map[string]struct{}
	curMax, prevMax int64       // latest expiry in each generation, Unix seconds
	pending         *nonceBatch // the batch the next commit writes

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// nonceBatch is one commit's nonces; done is closed once err is set.
type nonceBatch struct {
	keys    []string
	expires int64
	done    chan struct{}
	err     error
}

// nonceSchema replaces the first layout (a WITHOUT ROWID table keyed by the
// nonce), carrying over its nonces, in one transaction. It runs at every
// open: where there is no old table it creates one, empty, and drops it.
const nonceSchema = `
CREATE TABLE IF NOT EXISTS nonce_batches (expires INTEGER NOT NULL, keys TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) STRICT, WITHOUT ROWID;
INSERT INTO nonce_batches (expires, keys) SELECT expires, json_array(key) FROM nonces;
DROP TABLE nonces;`

func openNonceLog(ctx context.Context, db *sql.DB, now time.Time) (*nonceLog, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, nonceSchema); err != nil {
		tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	l := &nonceLog{db: db, cur: map[string]struct{}{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	rows, err := db.QueryContext(ctx, `SELECT expires, keys FROM nonce_batches WHERE expires >= ?`, now.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var exp int64
		var js []byte
		var keys []string
		if err := rows.Scan(&exp, &js); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(js, &keys); err != nil {
			return nil, fmt.Errorf("a nonce batch is not a JSON array of strings: %w", err)
		}
		for _, k := range keys {
			l.cur[k] = struct{}{}
		}
		l.curMax = max(l.curMax, exp)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

// use records key, or returns ErrReplay; it returns once key is written.
func (l *nonceLog) use(ctx context.Context, key string, expires time.Time) error {
	l.mu.Lock()
	if l.seen(key) {
		l.mu.Unlock()
		return ErrReplay
	}
	l.cur[key] = struct{}{}
	l.curMax = max(l.curMax, expires.Unix())
	b := l.pending
	if b == nil {
		b = &nonceBatch{done: make(chan struct{})}
		l.pending = b
	}
	b.keys = append(b.keys, key)
	b.expires = max(b.expires, expires.Unix())
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // a commit is already due
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		// The nonce stays taken: it may still be committed, and a request
		// that gave up must not become replayable.
		return ctx.Err()
	}
}

// seen reports whether key is live; l.mu is held.
func (l *nonceLog) seen(key string) bool {
	if _, ok := l.cur[key]; ok {
		return true
	}
	_, ok := l.prev[key]
	return ok
}

func (l *nonceLog) commitLoop() {
	defer close(l.stopped)
	for {
		select {
		case <-l.kick:
			// Yield before committing, so that every request already
			// runnable reaches its nonce and joins this commit (about
			// 25 µs of CPU, whatever its size). Idle, a request waits for
			// nothing; busy, a commit carries the whole run queue. A timed
			// linger (0.5 ms) did worse both ways: it capped 4 clients at
			// a quarter of the throughput, and batched no better under
			// load.
			runtime.Gosched()
			l.commit()
		case <-l.stop:
			l.commit()
			return
		}
	}
}

func (l *nonceLog) commit() {
	l.mu.Lock()
	b := l.pending
	l.pending = nil
	l.mu.Unlock()
	if b == nil {
		return
	}
	js, err := json.Marshal(b.keys)
	if err == nil {
		_, err = l.db.Exec(`INSERT INTO nonce_batches (expires, keys) VALUES (?, ?)`, b.expires, string(js))
	}
	if err != nil {
		// Not durable, so not accepted: forget them and fail the requests.
		l.mu.Lock()
		for _, k := range b.keys {
			delete(l.cur, k)
			delete(l.prev, k)
		}
		l.mu.Unlock()
		b.err = fmt.Errorf("record nonces: %w", err)
	}
	close(b.done)
}

// purge forgets nonces that expired before now, on disk (a batch goes once
// its latest nonce has expired) and in memory a generation at a time: a
// nonce may outlive its expiry by up to a purge period, which only makes
// the guard stricter. It returns how many batches left the disk.
func (l *nonceLog) purge(ctx context.Context, now time.Time) (int64, error) {
	l.mu.Lock()
	if l.prevMax < now.Unix() {
		l.prev, l.prevMax = l.cur, l.curMax
		l.cur, l.curMax = map[string]struct{}{}, 0
	}
	l.mu.Unlock()
	// The daemon's expiries grow with the rowid, so the expired batches are
	// the rows before the first live one: found by walking the expired rows
	// only, not the few minutes of traffic after them. A batch out of order
	// (the clock stepped back) waits for the ones before it: kept longer,
	// never dropped early. They go purgeChunk rows a statement, so commits
	// wait a few milliseconds at most, not for a minute's worth of rows.
	var total int64
	for {
		res, err := l.db.ExecContext(ctx, `
			DELETE FROM nonce_batches WHERE expires < ?1 AND rowid < min(
				(SELECT min(rowid) FROM nonce_batches) + ?2,
				coalesce((SELECT rowid FROM nonce_batches WHERE expires >= ?1 ORDER BY rowid LIMIT 1),
					(SELECT max(rowid) + 1 FROM nonce_batches)))`, now.Unix(), purgeChunk)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// purgeChunk is how many batches one purge statement deletes: about 2 ms.
const purgeChunk = 1000

// close commits what is pending and stops.
func (l *nonceLog) close() {
	close(l.stop)
	<-l.stopped
}
