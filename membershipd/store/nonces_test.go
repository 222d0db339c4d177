package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNonceLogConcurrentAndDurable: of many concurrent uses of one nonce
// exactly one wins, every accepted nonce is on disk when use returns (a
// reopened store refuses it), and purge forgets only expired ones.
func TestNonceLogConcurrentAndDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Committed alone (use returns after its commit): a batch leaves the
	// disk when its latest nonce has expired.
	if err := s.UseNonce(ctx, "carol:old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute)
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			switch err := s.UseNonce(ctx, "alice:same", exp); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrReplay):
				replays.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	for i := range 200 { // distinct nonces, grouped into few commits
		wg.Go(func() {
			if err := s.UseNonce(ctx, fmt.Sprintf("bob:%d", i), exp); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 49 {
		t.Fatalf("same nonce 50 times: %d accepted, %d replays; want 1 and 49", wins.Load(), replays.Load())
	}
	if n, err := s.PurgeNonces(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want the one expired nonce", n, err)
	}
	s.Close()

	s2, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, k := range []string{"alice:same", "bob:0", "bob:199"} {
		if err := s2.UseNonce(ctx, k, exp); !errors.Is(err, ErrReplay) {
			t.Errorf("%s after reopen: %v; want ErrReplay", k, err)
		}
	}
	if err := s2.UseNonce(ctx, "carol:old", exp); err != nil {
		t.Errorf("a purged nonce is refused: %v", err)
	}
}

// TestNonceLogForgetsByGeneration: memory is freed a generation at a time,
// never before every nonce in the generation has expired.
func TestNonceLogForgetsByGeneration(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	if err := s.UseNonce(ctx, "alice:a", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The first purge moves alice:a into the older generation; it is still
	// refused, as its expiry has not passed.
	s.PurgeNonces(ctx, now)
	if err := s.UseNonce(ctx, "alice:b", now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	s.PurgeNonces(ctx, now.Add(30*time.Second))
	if err := s.UseNonce(ctx, "alice:a", now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("alice:a before its expiry: %v; want ErrReplay", err)
	}
	// Past alice:a's expiry its generation goes; alice:b's (newer) stays.
	if n, err := s.PurgeNonces(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want alice:a's row", n, err)
	}
	if err := s.UseNonce(ctx, "alice:b", now.Add(3*time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("alice:b before its expiry: %v; want ErrReplay", err)
	}
	if err := s.UseNonce(ctx, "alice:a", now.Add(3*time.Minute)); err != nil {
		t.Fatalf("alice:a after its expiry and a purge: %v; want accepted", err)
	}
}

// TestNonceLogUpgradesOldLayout: a nonces.db from the first layout (a row
// per nonce) is carried over: its live nonces stay refused, the old table
// goes.
func TestNonceLogUpgradesOldLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := openDB(filepath.Join(dir, "nonces.db"), "NORMAL", 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := old.Exec(`CREATE TABLE nonces (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) STRICT, WITHOUT ROWID;
		INSERT INTO nonces VALUES ('alice:live', ?), ('alice:gone', ?)`, now.Add(time.Minute).Unix(), now.Add(-time.Minute).Unix()); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.UseNonce(ctx, "alice:live", now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Errorf("a live nonce of the old layout: %v; want ErrReplay", err)
	}
	if err := s.UseNonce(ctx, "alice:gone", now.Add(time.Minute)); err != nil {
		t.Errorf("an expired nonce of the old layout: %v; want accepted", err)
	}
	var tables int
	s.nonces.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'nonces'`).Scan(&tables)
	if tables != 0 {
		t.Error("the old nonces table is still there")
	}
}

// TestNonceLogPurgesPastTheFirstChunk: a purge of more than purgeChunk
// batches takes them all and none that is still live. An expired batch
// behind a live one (written after a clock step back) waits for it.
func TestNonceLogPurgesPastTheFirstChunk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tx, err := s.nonces.Begin()
	if err != nil {
		t.Fatal(err)
	}
	n := 2*purgeChunk + 500
	for i := range n {
		tx.Exec(`INSERT INTO nonce_batches (expires, keys) VALUES (?, ?)`, now.Add(-time.Minute).Unix(), fmt.Sprintf(`["alice:old%d"]`, i))
	}
	tx.Exec(`INSERT INTO nonce_batches (expires, keys) VALUES (?, '["alice:live"]')`, now.Add(time.Minute).Unix())
	tx.Exec(`INSERT INTO nonce_batches (expires, keys) VALUES (?, '["alice:behind"]')`, now.Add(-time.Minute).Unix())
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PurgeNonces(ctx, now); err != nil || got != int64(n) {
		t.Fatalf("purge: %d, %v; want %d", got, err, n)
	}
	var left int
	s.nonces.QueryRow(`SELECT count(*) FROM nonce_batches`).Scan(&left)
	if left != 2 {
		t.Fatalf("%d batches left; want the live one and the one behind it", left)
	}
	s.Close()

	s, err = OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.UseNonce(ctx, "alice:live", now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Errorf("the live nonce after the purge: %v; want ErrReplay", err)
	}
	if err := s.UseNonce(ctx, "alice:old0", now.Add(time.Minute)); err != nil {
		t.Errorf("a purged nonce: %v; want accepted", err)
	}
}
