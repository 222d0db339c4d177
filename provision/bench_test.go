package provision

import (
	"fmt"
	"testing"
)

// BenchmarkRender renders clusters of 3, 30 and 300 nodes whose
// certificates and sealed passwords already exist: the steady state of
// render, plan and apply. Nodes sit on 10.1.x.y, so every unit's
// IPAddressAllow= and --routes name all the peers, as on real hosts; that
// part grows with the square of the node count, and the per-node
// ns/node metric shows how much it weighs.
func BenchmarkRender(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dir, keys := b.TempDir(), b.TempDir()
			op := newKey(b, keys, "operator")
			var recips []string
			for i := range n {
				recips = append(recips, newKey(b, keys, fmt.Sprintf("n%d", i+1)).recipient)
			}
			clusterSpecOn(b, dir, "10.1", op.recipient, recips)
			spec := mustLoad(b, dir, nil)
			mustRender(b, spec, RenderOptions{}) // issue and seal once
			b.ResetTimer()
			for b.Loop() {
				if _, err := Render(spec, RenderOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/node")
		})
	}
}
