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
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver (CGO_ENABLED=0)
)

// SQLite is the single-node store: one file, WAL mode, schema versioned with
// PRAGMA user_version.
type SQLite struct {
	db   *sql.DB
	path string
}

// migrations are applied in order, each once, in its own transaction. Append
// only: never edit a migration that has shipped.
var migrations = []string{
	// 1: node identity, so a restart on the same state dir is the same node.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;`,
}

// OpenSQLite opens (creating if needed) the database at path and brings its
// schema up to date.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	// busy_timeout: a second process (migrate-to-kv, an operator's sqlite3)
	// waits for the lock instead of failing at once. synchronous=FULL: an
	// acknowledged write survives power loss, as for JetStream's sync=always.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a single connection also keeps
	// the pragmas above on every statement.
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
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

// Close checkpoints the WAL into the main file and closes the database.
func (s *SQLite) Close() error {
	s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return s.db.Close()
}
