package store

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkUseNonce: the durable replay check every signed request makes,
// from one and from sixteen goroutines a CPU. It reports the nonces a commit
// carried: the group commit is what keeps the per-request cost low.
func BenchmarkUseNonce(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenSQLite(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var seq atomic.Int64
			exp := time.Now().Add(time.Minute)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.UseNonce(ctx, fmt.Sprintf("alice:%022d", seq.Add(1)), exp); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var commits int
			s.nonces.QueryRow(`SELECT count(*) FROM nonce_batches`).Scan(&commits)
			b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "nonces/commit")
		})
	}
}
