package store

import (
	"context"
	"errors"
	"fmt"
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
	if err := s.UseNonce(ctx, "carol:old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
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
