package pki

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// Issuance is bounded by key generation: each leaf needs a fresh key, and
// signing it costs about as much again. The benchmarks report both rates
// side by side (certs/s vs keys/s).

func BenchmarkKeyGen(b *testing.B) {
	for _, kt := range []KeyType{P256, Ed25519} {
		b.Run(string(kt), func(b *testing.B) {
			for b.Loop() {
				if _, err := GenerateKey(kt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

func BenchmarkIssueLeaf(b *testing.B) {
	now := time.Now()
	for _, kt := range []KeyType{P256, Ed25519} {
		b.Run(string(kt), func(b *testing.B) {
			ca, err := NewCA(CASpec{Kind: RouteCA, Cluster: "bench", KeyType: kt}, now)
			if err != nil {
				b.Fatal(err)
			}
			leaf := Leaf{Kind: KindRoute, Name: "n1", DNS: []string{"n1.bench"}, IPs: []net.IP{net.IPv4(10, 0, 0, 1)}, KeyType: kt}
			for b.Loop() {
				if _, err := ca.Issue(leaf, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

// BenchmarkIssueClusterSet3 issues what a 3-node cluster needs: two CAs,
// a route and a client-facing certificate per node, and an admin client
// certificate. "memory" is the issuance itself (what plan/apply pays);
// "disk" adds the atomic writes with fsync that unibus pki does, which on
// most disks cost more than the cryptography.
func BenchmarkIssueClusterSet3(b *testing.B) {
	nodes := make([]Node, 3)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i+1), DNS: []string{fmt.Sprintf("n%d.bench", i+1)}, IPs: []net.IP{net.IPv4(10, 0, 0, byte(i+1))}}
	}
	b.Run("memory", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			var cas CAs
			var err error
			if cas.Route, err = NewCA(CASpec{Kind: RouteCA, Cluster: "bench"}, now); err != nil {
				b.Fatal(err)
			}
			if cas.Client, err = NewCA(CASpec{Kind: ClientCA, Cluster: "bench"}, now); err != nil {
				b.Fatal(err)
			}
			leaves := []Leaf{{Kind: KindClient, Name: "admin"}}
			for _, n := range nodes {
				leaves = append(leaves, n.Leaves()...)
			}
			for _, l := range leaves {
				if _, err := cas.For(l.Kind).Issue(l, now); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/set")
	})
	b.Run("disk", func(b *testing.B) {
		for b.Loop() {
			d := Dir(b.TempDir())
			cas, err := d.InitCAs(InitOptions{Cluster: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			for _, n := range nodes {
				if _, err := d.IssueNode(cas, n, IssueOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := d.IssueClient(cas.Client, Leaf{Name: "admin"}, IssueOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/set")
	})
}
