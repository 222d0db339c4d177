package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var _ Store = (*SQLite)(nil)

// isConstraint reports a UNIQUE or PRIMARY KEY violation. The driver's error
// type is internal to modernc.org/sqlite, so the message is what we have.
func isConstraint(err error) bool {
	return err != nil && strings.Contains(err.Error(), "constraint failed")
}

func (s *SQLite) CreateMember(ctx context.Context, m Member) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO members (handle, role, sign_pub, age_recipient, vouched_by, vouch_sig, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		m.Handle, string(m.Role), m.SignPub, m.AgeRecipient, m.VouchedBy, m.VouchSig, m.Created.Unix())
	if isConstraint(err) {
		return fmt.Errorf("member %q or its signing key: %w", m.Handle, ErrExists)
	}
	return err
}

func (s *SQLite) Member(ctx context.Context, handle string) (Member, error) {
	var m Member
	var created int64
	err := s.db.QueryRowContext(ctx,
		`SELECT handle, role, sign_pub, age_recipient, vouched_by, vouch_sig, created FROM members WHERE handle = ?`, handle).
		Scan(&m.Handle, &m.Role, &m.SignPub, &m.AgeRecipient, &m.VouchedBy, &m.VouchSig, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, fmt.Errorf("member %q: %w", handle, ErrNotFound)
	}
	m.Created = time.Unix(created, 0).UTC()
	return m, err
}

func (s *SQLite) HasAdmin(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE role = 'admin'`).Scan(&n)
	return n > 0, err
}

func (s *SQLite) CreateFirstAdmin(ctx context.Context, m Member) error {
	m.Role = RoleAdmin
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE role = 'admin'`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("an admin: %w", ErrExists)
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO members (handle, role, sign_pub, age_recipient, vouched_by, vouch_sig, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			m.Handle, string(m.Role), m.SignPub, m.AgeRecipient, m.VouchedBy, m.VouchSig, m.Created.Unix())
		if isConstraint(err) {
			return fmt.Errorf("member %q or its signing key: %w", m.Handle, ErrExists)
		}
		return err
	})
}

func (s *SQLite) AllMembers(ctx context.Context) ([]Member, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT handle, role, sign_pub, age_recipient, vouched_by, vouch_sig, created FROM members ORDER BY handle`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var created int64
		if err := rows.Scan(&m.Handle, &m.Role, &m.SignPub, &m.AgeRecipient, &m.VouchedBy, &m.VouchSig, &created); err != nil {
			return nil, err
		}
		m.Created = time.Unix(created, 0).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// CreateRoom stores r with its owner as first member.
func (s *SQLite) CreateRoom(ctx context.Context, r Room) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rooms (id, name, owner, key_epoch, created) VALUES (?, ?, ?, ?, ?)`,
			r.ID, r.Name, r.Owner, r.KeyEpoch, r.Created.Unix())
		if isConstraint(err) {
			return fmt.Errorf("room %q: %w", r.ID, ErrExists)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO room_members (room, handle) VALUES (?, ?)`, r.ID, r.Owner)
		return err
	})
}

func (s *SQLite) Room(ctx context.Context, id string) (Room, error) {
	rooms, err := s.queryRooms(ctx, `WHERE r.id = ?`, id)
	if err != nil {
		return Room{}, err
	}
	if len(rooms) == 0 {
		return Room{}, fmt.Errorf("room %q: %w", id, ErrNotFound)
	}
	return rooms[0], nil
}

func (s *SQLite) RoomsOf(ctx context.Context, handle string) ([]Room, error) {
	return s.queryRooms(ctx, `WHERE r.id IN (SELECT room FROM room_members WHERE handle = ?)`, handle)
}

func (s *SQLite) AllRooms(ctx context.Context) ([]Room, error) {
	return s.queryRooms(ctx, ``)
}

// queryRooms loads rooms with their member lists in one query.
func (s *SQLite) queryRooms(ctx context.Context, where string, args ...any) ([]Room, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.id, r.name, r.owner, r.key_epoch, r.created, coalesce(m.handle, '')
		FROM rooms r LEFT JOIN room_members m ON m.room = r.id `+where+`
		ORDER BY r.created, r.id, m.handle`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		var r Room
		var created int64
		var member string
		if err := rows.Scan(&r.ID, &r.Name, &r.Owner, &r.KeyEpoch, &created, &member); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != r.ID {
			r.Created = time.Unix(created, 0).UTC()
			r.Members = []string{}
			out = append(out, r)
		}
		if member != "" {
			last := &out[len(out)-1]
			last.Members = append(last.Members, member)
		}
	}
	return out, rows.Err()
}

func (s *SQLite) AddRoomMember(ctx context.Context, room, handle string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO room_members (room, handle) VALUES (?, ?)`, room, handle)
	if isConstraint(err) {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("room %q or member %q: %w", room, handle, ErrNotFound)
		}
		return fmt.Errorf("%q in room %q: %w", handle, room, ErrExists)
	}
	return err
}

func (s *SQLite) RemoveRoomMember(ctx context.Context, room, handle string) (int64, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	var epoch int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM room_members WHERE room = ? AND handle = ?`, room, handle)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%q in room %q: %w", handle, room, ErrNotMember)
		}
		// The sealed key goes with the membership (ON DELETE CASCADE); the
		// epoch bump tells the remaining members to re-key.
		return tx.QueryRowContext(ctx, `UPDATE rooms SET key_epoch = key_epoch + 1 WHERE id = ? RETURNING key_epoch`, room).Scan(&epoch)
	})
	if err == nil {
		delete(s.keys, [2]string{room, handle})
	}
	return epoch, err
}

func (s *SQLite) PutSealedKey(ctx context.Context, k SealedKey) error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var epoch int64
		err := tx.QueryRowContext(ctx, `SELECT key_epoch FROM rooms WHERE id = ?`, k.Room).Scan(&epoch)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("room %q: %w", k.Room, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if k.Epoch != epoch {
			return fmt.Errorf("epoch %d, room is at %d: %w", k.Epoch, epoch, ErrStaleEpoch)
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO sealed_keys (room, handle, epoch, sealed) VALUES (?, ?, ?, ?)
			ON CONFLICT (room, handle) DO UPDATE SET epoch = excluded.epoch, sealed = excluded.sealed`,
			k.Room, k.Handle, k.Epoch, k.Sealed)
		if isConstraint(err) {
			return fmt.Errorf("%q in room %q: %w", k.Handle, k.Room, ErrNotMember)
		}
		return err
	})
	if err == nil {
		s.keys[[2]string{k.Room, k.Handle}] = k
	}
	return err
}

// SealedKey reads from memory (see SQLite.keys).
func (s *SQLite) SealedKey(ctx context.Context, room, handle string) (SealedKey, error) {
	s.keysMu.RLock()
	k, ok := s.keys[[2]string{room, handle}]
	s.keysMu.RUnlock()
	if !ok {
		return SealedKey{}, fmt.Errorf("sealed key of %q in room %q: %w", handle, room, ErrNotFound)
	}
	return k, nil
}

// loadSealedKeys fills the in-memory copy at open.
func (s *SQLite) loadSealedKeys(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT room, handle, epoch, sealed FROM sealed_keys`)
	if err != nil {
		return err
	}
	defer rows.Close()
	s.keys = map[[2]string]SealedKey{}
	for rows.Next() {
		var k SealedKey
		if err := rows.Scan(&k.Room, &k.Handle, &k.Epoch, &k.Sealed); err != nil {
			return err
		}
		s.keys[[2]string{k.Room, k.Handle}] = k
	}
	return rows.Err()
}

func (s *SQLite) AddBlob(ctx context.Context, sha256, room string, size int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO blobs (sha256, room, size) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, sha256, room, size)
	return err
}

// BlobRef is one entry of the blob index: a blob readable in a room.
type BlobRef struct {
	SHA256, Room string
	Size         int64
}

// AllBlobs is the whole blob index, by room then digest.
func (s *SQLite) AllBlobs(ctx context.Context) ([]BlobRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sha256, room, size FROM blobs ORDER BY room, sha256`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BlobRef
	for rows.Next() {
		var b BlobRef
		if err := rows.Scan(&b.SHA256, &b.Room, &b.Size); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (s *SQLite) BlobInRoom(ctx context.Context, sha256, room string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM blobs WHERE sha256 = ? AND room = ?`, sha256, room).Scan(&n)
	return n > 0, err
}

func (s *SQLite) UseNonce(ctx context.Context, key string, expires time.Time) error {
	return s.nonceLog.use(ctx, key, expires)
}

// PurgeNonces deletes nonces that expired before now, and returns how many
// commits' worth (rows) it deleted; the daemon calls it on a timer so the
// table stays the size of a few minutes of traffic.
func (s *SQLite) PurgeNonces(ctx context.Context, now time.Time) (int64, error) {
	return s.nonceLog.purge(ctx, now)
}

func (s *SQLite) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
