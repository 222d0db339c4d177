package provision

import (
	"context"
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

// BenchmarkPlan is a whole plan (observe the operator state, observe every
// node concurrently, plan, diff) of clusters of 3, 30 and 300 nodes that
// match the spec (the steady state a no-op apply starts from). Every node
// is a local render-only target: its root is a folder holding the files
// render gave it, and its own age identity.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dir, keys := b.TempDir(), b.TempDir()
			op := newKey(b, keys, "operator")
			var nodes []keypair
			var recips []string
			for i := range n {
				k := newKey(b, keys, fmt.Sprintf("n%d", i+1))
				nodes = append(nodes, k)
				recips = append(recips, k.recipient)
			}
			rootedSpec(b, dir, op.recipient, recips)
			spec := mustLoad(b, dir, nil)
			install(b, mustRender(b, spec, RenderOptions{}))
			for i, k := range nodes {
				writeIdentity(b, spec.Nodes[i].Target, k)
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				p, err := MakePlan(ctx, spec, PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if p.Doc.Changed() {
					b.Fatalf("plan of an up-to-date cluster has changes: %+v", p.Doc.Summary)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/node")
		})
	}
}
