package provision

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/unibus/unibus/units"
)

// copySpec copies a spec folder's .hcl files to a fresh temp folder, so a
// render's operator state lands there and not in the repository.
func copySpec(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(src, "*.hcl"))
	if len(files) == 0 {
		t.Fatalf("no .hcl file in %s", src)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func mustLoad(t testing.TB, dir string, vars map[string]string) *Spec {
	t.Helper()
	spec, srcs, diags := LoadFiles(dir, vars)
	if diags.HasErrors() {
		var buf bytes.Buffer
		_ = WriteDiagnostics(&buf, srcs, diags)
		t.Fatalf("spec %s:\n%s", dir, buf.String())
	}
	return spec
}

func mustRender(t testing.TB, spec *Spec, o RenderOptions) *Desired {
	t.Helper()
	d, err := Render(spec, o)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return d
}

// readTree reads every file under dir, by slash path relative to it.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fi.Mode().Perm().String() + "\n" + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type keypair struct {
	id        *age.X25519Identity
	recipient string
	file      string // identity file, for the age CLI
}

func newKey(t testing.TB, dir, name string) keypair {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name+".key")
	if err := os.WriteFile(f, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keypair{id: id, recipient: id.Recipient().String(), file: f}
}

// ageCLI finds the real age command (make deps installs it with go install).
func ageCLI(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("age")
	if err != nil {
		t.Fatal("the age command is missing: run make deps (go install filippo.io/age/cmd/...@v1.3.2)")
	}
	return p
}

func ageDecrypt(t testing.TB, identityFile, file string) (string, error) {
	t.Helper()
	cmd := exec.Command(ageCLI(t), "-d", "-i", identityFile, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &exec.ExitError{Stderr: stderr.Bytes()}
	}
	return string(out), nil
}

func verifyUnits(t testing.TB, out string, d *Desired) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing: run make deps (it installs the systemd package)")
	}
	for _, n := range d.Nodes {
		if err := units.Verify(context.Background(), filepath.Join(out, n.Node), n.Target.Scope, n.Unit); err != nil {
			t.Errorf("node %s: %v", n.Node, err)
		}
	}
}

func unitFiles(n NodeFiles) []File {
	var out []File
	for _, f := range n.Files {
		if strings.Contains(f.Path, "systemd/") {
			out = append(out, f)
		}
	}
	return out
}
