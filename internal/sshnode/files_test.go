package sshnode

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/provision"
)

// The SSH transport sees and changes a root exactly as LocalTransport
// does, for names the shell would otherwise read.
func TestFilesRoundTrip(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c := dial(t, s, Options{})
	tr, root := nodeRoot(t, c)
	local := provision.LocalTransport{Root: root}
	ctx := context.Background()

	odd := "etc/unibus/we'ird $(touch pwned) `touch pwned` *name"
	writes := []struct {
		p    string
		mode fs.FileMode
	}{
		{"etc/systemd/system/x.service", 0o644},
		{"etc/unibus/certs/node.pem", 0o644},
		{"etc/unibus/secrets/pass.age", 0o600},
		{"-starts-with-dash", 0o640},
		{odd, 0o600},
		{"etc/unibus/empty", 0o644},
		// Overwritten: one file, with the new mode.
		{"etc/unibus/certs/node.pem", 0o640},
	}
	// The same writes locally, to compare the folders made.
	localRoot := t.TempDir()
	for _, w := range writes {
		data := []byte("content of " + w.p + "\n")
		if w.p == "etc/unibus/empty" {
			data = nil
		}
		if err := tr.WriteFile(ctx, w.p, data, w.mode); err != nil {
			t.Fatalf("write %s: %v", w.p, err)
		}
		if err := (provision.LocalTransport{Root: localRoot}).WriteFile(ctx, w.p, data, w.mode); err != nil {
			t.Fatal(err)
		}
	}

	got, err := tr.Files(ctx, []string{"etc", "-starts-with-dash", "missing/folder"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := local.Files(ctx, []string{"etc", "-starts-with-dash", "missing/folder"})
	if err != nil {
		t.Fatal(err)
	}
	sortFiles(got)
	sortFiles(want)
	if !slices.Equal(got, want) || len(got) != len(writes)-1 {
		t.Fatalf("over ssh:\n%v\nlocally:\n%v", got, want)
	}
	for _, f := range got {
		if f.Path == "etc/unibus/certs/node.pem" && f.Mode != 0o640 {
			t.Errorf("node.pem mode %o after rewrite, want 640", f.Mode)
		}
	}
	// Folders as LocalTransport makes them: private under the config dir.
	for dir, mode := range map[string]fs.FileMode{"etc": 0o755, "etc/systemd/system": 0o755, "etc/unibus": 0o700, "etc/unibus/certs": 0o700} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("folder %s over ssh: %v, mode %o, want %o", dir, err, fi.Mode().Perm(), mode)
		}
		lfi, err := os.Stat(filepath.Join(localRoot, dir))
		if err != nil || lfi.Mode().Perm() != fi.Mode().Perm() {
			t.Errorf("folder %s: %v, mode %o locally, %o over ssh", dir, err, lfi.Mode().Perm(), fi.Mode().Perm())
		}
	}
	for _, dir := range []string{root, filepath.Join(root, "etc/unibus"), os.Getenv("HOME"), "/"} {
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Fatalf("a path was run as a command: %s/pwned exists", dir)
		}
	}

	data, ok, err := tr.ReadPublic(ctx, odd)
	if err != nil || !ok || string(data) != "content of "+odd+"\n" {
		t.Fatalf("ReadPublic: %q %v %v", data, ok, err)
	}
	if _, ok, err := tr.ReadPublic(ctx, "etc/nothing"); ok || err != nil {
		t.Fatalf("ReadPublic of a missing file: ok %v, %v", ok, err)
	}
	// Paths never leave the root.
	if _, ok, err := tr.ReadPublic(ctx, "../../../../etc/passwd"); ok || err != nil {
		t.Fatalf("ReadPublic ../etc/passwd: ok %v, %v (want missing: it is root/etc/passwd)", ok, err)
	}
	if err := tr.Remove(ctx, odd); err != nil {
		t.Fatal(err)
	}
	if err := tr.Remove(ctx, odd); err != nil {
		t.Fatalf("remove of a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, odd)); !os.IsNotExist(err) {
		t.Fatalf("removed file: %v", err)
	}
	if files, err := tr.Files(ctx, []string{"nothing-here"}); err != nil || len(files) != 0 {
		t.Fatalf("Files of a missing path: %v %v", files, err)
	}
	missingRoot, _ := c.Transport(filepath.Join(root, "no-root"))
	if files, err := missingRoot.Files(ctx, []string{"etc"}); err != nil || len(files) != 0 {
		t.Fatalf("Files under a missing root: %v %v", files, err)
	}
}

func sortFiles(fs []provision.FileState) {
	slices.SortFunc(fs, func(a, b provision.FileState) int {
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
}

// The node's age identity is made on the node once, 0600, and read back
// as its recipient only: with age-keygen there, and without it.
func TestEnsureAgeIdentity(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	keygen, err := exec.LookPath("age-keygen")
	if err != nil {
		t.Skip("age-keygen not on PATH (make deps installs it)")
	}
	for name, kg := range map[string]string{"age-keygen on the node": keygen, "no age-keygen on the node": "/nonexistent/age-keygen"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, s, Options{AgeKeygen: kg})
			tr, root := nodeRoot(t, c)
			ctx := context.Background()
			p := "etc/unibus/age-identity"
			if _, ok, err := tr.AgeRecipient(ctx, p); ok || err != nil {
				t.Fatalf("recipient before: %v %v", ok, err)
			}
			r, created, err := tr.EnsureAgeIdentity(ctx, p)
			if err != nil || !created {
				t.Fatalf("EnsureAgeIdentity: %q %v %v", r, created, err)
			}
			r2, created, err := tr.EnsureAgeIdentity(ctx, p)
			if err != nil || created || r2 != r {
				t.Fatalf("second EnsureAgeIdentity: %q %v %v, want %q not created", r2, created, err, r)
			}
			lr, ok, err := provision.LocalTransport{Root: root}.AgeRecipient(ctx, p)
			if err != nil || !ok || lr != r {
				t.Fatalf("the identity on disk has recipient %q (%v %v), ssh said %q", lr, ok, err, r)
			}
			for f, mode := range map[string]fs.FileMode{p: 0o600, "etc/unibus": 0o700} {
				if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != mode {
					t.Fatalf("%s: %v %v, want mode %o", f, err, fi, mode)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "etc/unibus/bad"), []byte("# public key: age1xyz\nnot a key\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := tr.AgeRecipient(ctx, "etc/unibus/bad"); err == nil {
				t.Fatal("a file with no key gave a recipient")
			}
		})
	}
}
