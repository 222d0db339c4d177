// Package store keeps membershipd's control-plane state: a SQLite file on a
// single node. It is for the membershipd package only.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver (CGO_ENABLED=0)
)

// SQLite is the single-node store: membershipd.db (WAL, synchronous=FULL,
// schema versioned with PRAGMA user_version) and nonces.db for replay
// protection.
//
// Nonces live in their own file with synchronous=NORMAL: every signed
// request writes one, and an fsync per request would cap the control plane
// at the disk's flush rate. In WAL mode NORMAL still survives a crash or
// restart of membershipd; only a power cut can lose the last few nonces,
// and those expire within two minutes anyway.
type SQLite struct {
	db       *sql.DB
	nonces   *sql.DB
	nonceLog *nonceLog
	path     string
	dir      string

	// keysMu and keys hold every sealed key in memory, written through:
	// fetching one's key is the control plane's hot path. Every change to
	// sealed_keys goes through this store and holds keysMu from the SQL
	// write to the map update, so a reader never sees a key that a
	// committed removal deleted.
	keysMu sync.RWMutex
	keys   map[[2]string]SealedKey
}

// migrations are applied in order, each once, in its own transaction. Append
// only: never edit a migration that has shipped.
var migrations = []string{
	// 1: node identity, so a restart on the same state dir is the same node.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;`,
	// 2: the control plane.
	`CREATE TABLE members (
		handle        TEXT PRIMARY KEY,
		role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
		sign_pub      TEXT NOT NULL UNIQUE,
		age_recipient TEXT NOT NULL,
		created       INTEGER NOT NULL
	) STRICT;
	CREATE TABLE rooms (
		id        TEXT PRIMARY KEY,
		name      TEXT NOT NULL,
		owner     TEXT NOT NULL REFERENCES members (handle),
		key_epoch INTEGER NOT NULL,
		created   INTEGER NOT NULL
	) STRICT;
	CREATE TABLE room_members (
		room   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
		handle TEXT NOT NULL REFERENCES members (handle),
		PRIMARY KEY (room, handle)
	) STRICT;
	CREATE INDEX room_members_by_handle ON room_members (handle);
	CREATE TABLE sealed_keys (
		room   TEXT NOT NULL,
		handle TEXT NOT NULL,
		epoch  INTEGER NOT NULL,
		sealed BLOB NOT NULL,
		PRIMARY KEY (room, handle),
		FOREIGN KEY (room, handle) REFERENCES room_members (room, handle) ON DELETE CASCADE
	) STRICT;
	CREATE TABLE blobs (
		sha256 TEXT NOT NULL,
		room   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
		size   INTEGER NOT NULL,
		PRIMARY KEY (sha256, room)
	) STRICT;`,
	// 3: the admin's vouch for each member. Rows from before it get empty
	// strings: no vouch, so clients will not seal room keys to them.
	`ALTER TABLE members ADD COLUMN vouched_by TEXT NOT NULL DEFAULT '';
	ALTER TABLE members ADD COLUMN vouch_sig TEXT NOT NULL DEFAULT '';`,
}

// OpenSQLite opens (creating if needed) the databases in dir and brings
// their schema up to date.
func OpenSQLite(ctx context.Context, dir string) (*SQLite, error) {
	path := filepath.Join(dir, "membershipd.db")
	// synchronous=FULL: an acknowledged write survives power loss, as for
	// JetStream's sync=always.
	db, err := openDB(path, "FULL", 4)
	if err != nil {
		return nil, err
	}
	s := &SQLite{db: db, path: path, dir: dir}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	noncePath := filepath.Join(dir, "nonces.db")
	if s.nonces, err = openDB(noncePath, "NORMAL", 1); err != nil {
		db.Close()
		return nil, err
	}
	if s.nonceLog, err = openNonceLog(ctx, s.nonces, time.Now()); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", noncePath, err)
	}
	if err := s.loadSealedKeys(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// openDB opens a WAL database with conns connections: WAL lets readers run
// beside the one writer. Every connection gets the pragmas (the DSN applies
// them per connection).
func openDB(path, synchronous string, conns int) (*sql.DB, error) {
	// busy_timeout: a second writer (another request, bootstrap,
	// migrate-to-kv, an operator's sqlite3) waits for the lock instead of
	// failing at once. _txlock=immediate: transactions take the write lock
	// at BEGIN, so a read-then-write transaction cannot fail half-way when
	// another writer got there first.
	dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(" + synchronous + ")"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("%s: read schema version: %w", s.path, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("%s: schema version %d is newer than this membershipd knows (%d): run a newer membershipd", s.path, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: migration %d: %w", s.path, v+1, err)
		}
		// PRAGMA takes no bind parameters; v+1 is an int we control.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("%s: migration %d: %w", s.path, v+1, err)
		}
	}
	return nil
}

// Blobs is the folder of the blobs whose index this store keeps.
func (s *SQLite) Blobs() BlobDir { return BlobDir(filepath.Join(s.dir, "blobs")) }

// SchemaVersion is the applied migration count.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

// InstanceID returns the random id made the first time this state dir was
// used. It survives restarts; a new id means the state was lost.
func (s *SQLite) InstanceID(ctx context.Context) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	b := make([]byte, 16)
	rand.Read(b)
	id = hex.EncodeToString(b)
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES ('instance_id', ?), ('created_at', ?)`,
		id, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return "", fmt.Errorf("%s: record instance id: %w", s.path, err)
	}
	return id, nil
}

// MarkClusterNode records that this state dir belongs to a node of the
// named cluster, whose control state lives in the cluster's KV from now
// on: membershipd bootstrap then refuses to add an admin here.
func (s *SQLite) MarkClusterNode(ctx context.Context, cluster string) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES ('cluster', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, cluster)
	return err
}

// ClusterNode is the cluster MarkClusterNode recorded, or "".
func (s *SQLite) ClusterNode(ctx context.Context) (string, error) {
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'cluster'`).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

// Close checkpoints the WALs into the main files and closes the databases.
func (s *SQLite) Close() error {
	var errs []error
	if s.nonceLog != nil {
		s.nonceLog.close()
	}
	for _, db := range []*sql.DB{s.db, s.nonces} {
		if db == nil {
			continue
		}
		db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}
