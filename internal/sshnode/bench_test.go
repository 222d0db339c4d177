package sshnode

import (
	"context"
	"fmt"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/provision"
)

// BenchmarkFiles lists a 10-file tree over SSH beside the same tree
// through LocalTransport (one round trip per Files call over SSH).
func BenchmarkFiles(b *testing.B) {
	s := sshdtest.Start(b, sshdtest.Options{})
	c := dial(b, s, Options{})
	tr, root := nodeRoot(b, c)
	ctx := context.Background()
	for i := range 10 {
		if err := tr.WriteFile(ctx, fmt.Sprintf("etc/unibus/d%d/f%d", i%3, i), make([]byte, 4096), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for name, t := range map[string]provision.Transport{"ssh": tr, "local": provision.LocalTransport{Root: root}} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fs, err := t.Files(ctx, []string{"etc"})
				if err != nil || len(fs) != 10 {
					b.Fatalf("%d files, %v", len(fs), err)
				}
			}
		})
	}
	b.Run("ssh-session", func(b *testing.B) {
		// A session running nothing: the floor under every call.
		for b.Loop() {
			if _, err := c.Run(ctx, []string{"true"}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
