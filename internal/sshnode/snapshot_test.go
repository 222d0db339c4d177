package sshnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/unibus/unibus/internal/sshdtest"
	"github.com/unibus/unibus/provision"
)

// A snapshot over SSH, one session, is what LocalTransport reads call by
// call for the same root: the same files, modes and hashes, the contents
// of the public files only, and the identity's recipient. Names the shell
// or find would read otherwise, and more files than one tar run takes.
func TestSnapshotMatchesLocal(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	// No keygen on the node: the recipient comes from the identity's
	// "# public key:" line, as the node's shell reads it.
	c := dial(t, s, Options{AgeKeygen: "/nonexistent/age-keygen"})
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	secret := "SECRET-" + strings.Repeat("k", 20)
	req := provision.SnapshotRequest{
		Paths:      []string{"etc/unibus", "etc/systemd/system/u.service", "etc/systemd/system/u.service.d", "-dash", "missing"},
		PublicDirs: []string{"etc/systemd/system"},
		PublicExt:  ".crt",
		Identity:   "etc/unibus/age-identity",
	}
	tree := map[string]string{
		"etc/unibus/age-identity":                      fmt.Sprintf("# public key: %s\n%s\n", id.Recipient(), id),
		"etc/unibus/node.key":                          secret,
		"etc/unibus/password.age":                      secret,
		"etc/unibus/ca.crt":                            "a certificate\n",
		"etc/unibus/we'ird $(x) *[a].crt":              "an odd name\n",
		"etc/unibus/new\nline.crt":                     "a newline in the name\n",
		"etc/unibus/empty.crt":                         "",
		"etc/systemd/system/u.service":                 "[Service]\n",
		"etc/systemd/system/u.service.d/10-a.conf":     "[Service]\nX=1\n",
		"etc/systemd/system/u.service.d/big.conf":      strings.Repeat("0123456789abcdef", 1<<16),
		"etc/systemd/system/other.service":             "not asked for\n",
		"-dash":                                        "a leading dash\n",
		"etc/unibus/sub/deeper/secret-without-ext.pem": secret,
	}
	many := func(root string, n int) {
		for i := range n {
			p := filepath.Join(root, "etc/unibus/many", fmt.Sprintf("%s-%04d.crt", strings.Repeat("x", 60), i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644)
		}
	}
	for name, n := range map[string]int{"tree": 0, "more files than one tar run": 3000} {
		t.Run(name, func(t *testing.T) {
			tr, root := nodeRoot(t, c)
			for p, data := range tree {
				mode := os.FileMode(0o644)
				if strings.Contains(data, "SECRET") || strings.Contains(p, "identity") {
					mode = 0o600
				}
				os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
				if err := os.WriteFile(filepath.Join(root, p), []byte(data), mode); err != nil {
					t.Fatal(err)
				}
			}
			os.Symlink("ca.crt", filepath.Join(root, "etc/unibus/link.crt"))
			many(root, n)

			got, err := tr.Snapshot(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want, err := provision.TakeSnapshot(ctx, provision.LocalTransport{Root: root}, req)
			if err != nil {
				t.Fatal(err)
			}
			sortFiles(got.Files)
			sortFiles(want.Files)
			if !slices.Equal(got.Files, want.Files) {
				t.Fatalf("files over ssh (%d) differ from those listed locally (%d); first %v / %v", len(got.Files), len(want.Files), got.Files[:min(3, len(got.Files))], want.Files[:min(3, len(want.Files))])
			}
			if !maps.EqualFunc(got.Public, want.Public, bytes.Equal) {
				t.Fatalf("public files over ssh (%d) differ from those read locally (%d)", len(got.Public), len(want.Public))
			}
			if got.Recipient != id.Recipient().String() || want.Recipient != got.Recipient {
				t.Fatalf("recipient over ssh %q, locally %q, want %q", got.Recipient, want.Recipient, id.Recipient())
			}
			// The unit, its drop-ins and the .crt files, not the symlink.
			if wantN := 7 + n; len(got.Public) != wantN {
				t.Fatalf("%d public files, want %d", len(got.Public), wantN)
			}
			for p, data := range got.Public {
				if bytes.Contains(data, []byte("SECRET")) || bytes.Contains(data, []byte("AGE-SECRET-KEY")) {
					t.Fatalf("%s: a secret file's contents came back", p)
				}
			}
		})
	}

	// The node's own keygen reads the identity where it has one; an
	// identity with two keys is refused, naming the file.
	if kg, err := exec.LookPath("age-keygen"); err == nil {
		tr, root := nodeRoot(t, dial(t, s, Options{AgeKeygen: kg}))
		p := filepath.Join(root, req.Identity)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(id.String()+"\n"), 0o600) // no "# public key:" line
		if snap, err := tr.Snapshot(ctx, req); err != nil || snap.Recipient != id.Recipient().String() {
			t.Fatalf("recipient through age-keygen: %+v, %v", snap, err)
		}
		other, _ := age.GenerateX25519Identity()
		os.WriteFile(p, []byte(id.String()+"\n"+other.String()+"\n"), 0o600)
		_, err := tr.Snapshot(ctx, req)
		wantErr(t, err, "node1", p, "exactly one key")
	} else if os.Getenv("CI") != "" {
		t.Fatal("age-keygen not on PATH (make deps installs it)")
	}

	// Another command in the same session: its output, byte for byte
	// (multibyte text counted in bytes), its failure, and the files read
	// as without it.
	{
		tr, root := nodeRoot(t, c)
		os.MkdirAll(filepath.Join(root, "etc/unibus"), 0o700)
		os.WriteFile(filepath.Join(root, "etc/unibus/ca.crt"), []byte("ca\n"), 0o644)
		snap, out, runErr, err := tr.SnapshotWith(ctx, req, `printf '%s\n' "$1"; echo "$2" >&2; exit 3`, "h\u00e9llo", "w\u00f6rld")
		if err != nil || len(snap.Files) != 1 || string(snap.Public["etc/unibus/ca.crt"]) != "ca\n" {
			t.Fatalf("snapshot with a command: %+v, %v", snap, err)
		}
		var ee *ExitError
		if string(out) != "h\u00e9llo\nw\u00f6rld" || !errors.As(runErr, &ee) || ee.Status != 3 {
			t.Fatalf("the command's output %q, error %v; want its bytes and exit status 3", out, runErr)
		}
		if _, out, runErr, err := tr.SnapshotWith(ctx, req, `echo "$@"`, "fine"); err != nil || runErr != nil || string(out) != "fine" {
			t.Fatalf("a command that succeeds: %q, %v, %v", out, runErr, err)
		}
	}

	// A root that does not exist yet: nothing, and no error.
	tr, err := c.Transport("/nonexistent/root")
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := tr.Snapshot(ctx, req); err != nil || len(snap.Files) != 0 || snap.Recipient != "" {
		t.Fatalf("snapshot of a missing root: %+v, %v", snap, err)
	}
}
