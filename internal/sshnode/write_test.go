package sshnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
)

// An upload cut halfway, by the connection closing or by the context,
// leaves the old file whole at the final path (at most a temp file beside
// it), and the next write succeeds and removes the temp file.
func TestKilledUploadLeavesNoPartialFile(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	big := make([]byte, 256<<20)
	rand.Read(big)
	for _, how := range []string{"connection closed", "context cancelled"} {
		t.Run(how, func(t *testing.T) {
			c := dial(t, s, Options{})
			tr, root := nodeRoot(t, c)
			p := "etc/unibus/big.bin"
			final := filepath.Join(root, p)
			if err := tr.WriteFile(context.Background(), p, []byte("old\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tr.WriteFile(ctx, p, big, 0o600) }()
			// Cut it once part of the content has reached the temp file.
			for partial(t, final) == 0 {
				select {
				case err := <-done:
					t.Fatalf("the upload ended before it could be cut: %v", err)
				default:
					waitBriefly()
				}
			}
			if how == "connection closed" {
				c.Close()
			} else {
				cancel()
			}
			if err := <-done; err == nil {
				t.Fatal("a cut upload reported success")
			} else if how == "context cancelled" && !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled upload: %v", err)
			}
			// The node's side has finished whatever it was going to do.
			s.WaitIdle(t)
			if got, err := os.ReadFile(final); err != nil || !bytes.Equal(got, []byte("old\n")) {
				t.Fatalf("final path after a cut upload: %d bytes, %v; want the old file", len(got), err)
			}
			if how == "connection closed" {
				c = dial(t, s, Options{})
				tr, _ = c.Transport(root)
			}
			if err := tr.WriteFile(context.Background(), p, []byte("new\n"), 0o600); err != nil {
				t.Fatalf("the write after a cut one: %v", err)
			}
			if got, _ := os.ReadFile(final); string(got) != "new\n" {
				t.Fatalf("after rewriting: %q", got)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(final), ".big.bin.tmp*")); len(left) != 0 {
				t.Fatalf("temp files left after the next write: %v", left)
			}
		})
	}
}

// partial is the size of the temp file an upload to final writes (0 when
// there is none yet).
func partial(t *testing.T, final string) int64 {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".tmp*"))
	var n int64
	for _, f := range tmps {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}
