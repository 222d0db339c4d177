package sshnode

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

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

// BenchmarkMux: what a run through a mux pays: connecting to it (the
// handshake on the unix socket), and a session through it beside one on
// a direct connection.
func BenchmarkMux(b *testing.B) {
	s := sshdtest.Start(b, sshdtest.Options{})
	s.EnsurePlainUser(b)
	target := sshdtest.PlainUser + "@" + s.Addr
	runtime, err := os.MkdirTemp("", "mux")
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("XDG_RUNTIME_DIR", runtime)
	b.Cleanup(func() { killMuxes(b, runtime); os.RemoveAll(runtime) })
	o := Options{KeyFile: s.UserKey, KnownHosts: s.KnownHosts}
	first := &Pool{Options: o, Persist: time.Minute, MuxCommand: muxCommand(b)}
	if _, err := first.Client(context.Background(), "node1", target); err != nil {
		b.Fatal(err)
	}
	defer first.Close()
	do, _ := o.withDefaults()
	m, _ := muxFilesFor(target, do)
	waitMux(b, m)
	ctx := context.Background()
	b.Run("connect", func(b *testing.B) {
		for b.Loop() {
			p := &Pool{Options: o, Persist: time.Minute, MuxCommand: muxCommand(b)}
			c, err := p.Client(ctx, "node1", target)
			if err != nil || !viaMux(c) {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	p := &Pool{Options: o, Persist: time.Minute, MuxCommand: muxCommand(b)}
	defer p.Close()
	mc, err := p.Client(ctx, "node1", target)
	if err != nil || !viaMux(mc) {
		b.Fatal(err)
	}
	dc, err := Dial(ctx, "node1", target, o)
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Close()
	for name, c := range map[string]*Client{"session-mux": mc, "session-direct": dc} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Run(ctx, []string{"true"}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Three sessions at once, as a plan of three nodes opens them: what
	// sshd's sessions cost by themselves (true), beside a plan's read of
	// a node (a snapshot with the manager's query), both through the mux.
	tr, err := mc.Transport("/nonexistent/root")
	if err != nil {
		b.Fatal(err)
	}
	req := provision.SnapshotRequest{Paths: []string{"etc/unibus"}, PublicDirs: []string{"etc/systemd/system"},
		PublicExt: ".crt", Identity: "etc/unibus/age-identity"}
	for name, f := range map[string]func() error{
		"3-sessions-true": func() error { _, err := mc.Run(ctx, []string{"true"}, nil); return err },
		"3-sessions-snapshot": func() error {
			_, _, _, err := tr.SnapshotWith(ctx, req, `[ -S /nonexistent/socket ] || exit 1`)
			return err
		},
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				errs := make(chan error, 3)
				for range 3 {
					go func() { errs <- f() }()
				}
				for range 3 {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
