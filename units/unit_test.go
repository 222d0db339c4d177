package units

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sample() File {
	return File{
		Header: []string{"Rendered by a test", "second line"},
		Sections: []Section{
			{Name: "Unit", Options: []Option{{"Description", "a 100% test"}, {"After", "network-online.target"}}},
			{Name: "Service", Options: []Option{
				{"ExecStart", ""},
				{"ExecStart", `/bin/true --name "a b" --pct 100%%`},
				{"SystemCallFilter", "@system-service"},
				{"SystemCallFilter", "~@privileged @resources"},
				{"CapabilityBoundingSet", ""},
			}},
			{Name: "Install", Options: []Option{{"WantedBy", "multi-user.target"}}},
		},
	}
}

// A rendered file parses back to the same value through go-systemd's
// deserializer, and renders to the same bytes again.
func TestRoundTrip(t *testing.T) {
	f := sample()
	b1, err := f.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, f) {
		t.Fatalf("round trip changed the file:\n got %#v\nwant %#v", back, f)
	}
	b2, err := back.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if string(b1) != string(b2) {
		t.Fatalf("second rendering differs:\n%s\n---\n%s", b1, b2)
	}
	want := "# Rendered by a test\n# second line\n\n[Unit]\nDescription=a 100% test\n"
	if !strings.HasPrefix(string(b1), want) {
		t.Fatalf("rendered file starts\n%s\nwant\n%s", b1, want)
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := []struct {
		name string
		edit func(*File)
		want string
	}{
		{"newline in value", func(f *File) { f.Sections[1].Options[1].Value = "/bin/true\nExecStartPre=/bin/evil" }, "newline or control character"},
		{"control character", func(f *File) { f.Sections[0].Options[0].Value = "bell\a" }, "newline or control character"},
		{"trailing backslash", func(f *File) { f.Sections[0].Options[0].Value = `continues \` }, "ends in a backslash"},
		{"leading space", func(f *File) { f.Sections[0].Options[0].Value = " padded" }, "white space"},
		{"bad option name", func(f *File) { f.Sections[0].Options[0].Name = "Exec Start" }, `option name "Exec Start"`},
		{"unknown section", func(f *File) { f.Sections[2].Name = "Timer" }, "unknown section [Timer]"},
		{"sections out of order", func(f *File) { f.Sections[0], f.Sections[1] = f.Sections[1], f.Sections[0] }, "out of order"},
		{"header with newline", func(f *File) { f.Header[0] = "x\n[Service]" }, "header line"},
		{"empty", func(f *File) { f.Sections = nil }, "no section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sample()
			f.Sections = append([]Section(nil), f.Sections...)
			for i := range f.Sections {
				f.Sections[i].Options = append([]Option(nil), f.Sections[i].Options...)
			}
			c.edit(&f)
			_, err := f.Bytes()
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Bytes() error = %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestExecArg(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/local/bin/membershipd": "/usr/local/bin/membershipd",
		"/srv/my files/bin":          `"/srv/my files/bin"`,
		"100%":                       "100%%",
		"$HOME":                      "$$HOME",
		`say "hi"`:                   `"say \"hi\""`,
		"":                           `""`,
	} {
		if got := ExecArg(in); got != want {
			t.Errorf("ExecArg(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestScopePaths(t *testing.T) {
	if got := System.DropInPath("x.service", "cluster.conf"); got != "etc/systemd/system/x.service.d/cluster.conf" {
		t.Errorf("system drop-in path %s", got)
	}
	if got := User.UnitPath("x.service"); got != ".config/systemd/user/x.service" {
		t.Errorf("user unit path %s", got)
	}
	if _, err := ParseScope("global"); err == nil {
		t.Error("ParseScope accepted global")
	}
}

func needAnalyzer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing: run make deps (it installs the systemd package)")
	}
}

func writeUnit(t *testing.T, root, name, body string, dropIns map[string]string) {
	t.Helper()
	dir := filepath.Join(root, "etc", "systemd", "system")
	if err := os.MkdirAll(filepath.Join(dir, name+".d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, b := range dropIns {
		if err := os.WriteFile(filepath.Join(dir, name+".d", n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const plainUnit = "[Unit]\nDescription=plain\n\n[Service]\nExecStart=/opt/x/bin/daemon --flag\n\n[Install]\nWantedBy=multi-user.target\n"

// Verify passes a good unit and fails on what systemd only warns about,
// in the unit and in a drop-in; Security scores an unhardened unit high.
func TestVerifyAndSecurity(t *testing.T) {
	needAnalyzer(t)
	ctx := context.Background()
	good := t.TempDir()
	writeUnit(t, good, "plain.service", plainUnit, map[string]string{"env.conf": "[Service]\nEnvironment=A=1\n"})
	if err := Verify(ctx, good, System, "plain.service"); err != nil {
		t.Fatalf("Verify(good) = %v", err)
	}
	exp, err := Security(ctx, good, System, "plain.service")
	if err != nil {
		t.Fatal(err)
	}
	if exp.Score < 9 {
		t.Fatalf("an unhardened unit scores %.1f, want >= 9 (systemd's default unit is 9.2 or more)", exp.Score)
	}

	badKey := t.TempDir()
	writeUnit(t, badKey, "plain.service", strings.Replace(plainUnit, "[Install]", "ProtectEverything=yes\n\n[Install]", 1), nil)
	if err := Verify(ctx, badKey, System, "plain.service"); err == nil || !strings.Contains(err.Error(), "ProtectEverything") {
		t.Fatalf("Verify(unknown key) = %v, want an error naming the key", err)
	}
	badDropIn := t.TempDir()
	writeUnit(t, badDropIn, "plain.service", plainUnit, map[string]string{"bad.conf": "[Service]\nRestart=sometimes\n"})
	if err := Verify(ctx, badDropIn, System, "plain.service"); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Fatalf("Verify(bad drop-in) = %v, want an error naming the value", err)
	}
}

// User units are checked by the user manager's rules (systemd-analyze
// --user) from where a user's units live, drop-ins included.
func TestVerifyUserUnit(t *testing.T) {
	needAnalyzer(t)
	ctx := context.Background()
	userUnit := strings.Replace(plainUnit, "multi-user.target", "default.target", 1)
	put := func(root, body string, dropIns map[string]string) {
		dir := filepath.Join(root, filepath.FromSlash(User.UnitDir()))
		os.MkdirAll(filepath.Join(dir, "plain.service.d"), 0o755)
		os.WriteFile(filepath.Join(dir, "plain.service"), []byte(body), 0o644)
		for n, b := range dropIns {
			os.WriteFile(filepath.Join(dir, "plain.service.d", n), []byte(b), 0o644)
		}
	}
	good := t.TempDir()
	put(good, userUnit, map[string]string{"env.conf": "[Service]\nEnvironment=A=1\n"})
	if err := Verify(ctx, good, User, "plain.service"); err != nil {
		t.Fatalf("Verify(good user unit) = %v", err)
	}
	if exp, err := Security(ctx, good, User, "plain.service"); err != nil || exp.Score < 9 {
		t.Fatalf("Security(unhardened user unit) = %.1f, %v; want >= 9", exp.Score, err)
	}
	badDropIn := t.TempDir()
	put(badDropIn, userUnit, map[string]string{"bad.conf": "[Service]\nProtectEverything=yes\n"})
	if err := Verify(ctx, badDropIn, User, "plain.service"); err == nil || !strings.Contains(err.Error(), "ProtectEverything") {
		t.Fatalf("Verify(user unit, bad drop-in) = %v, want an error naming the key", err)
	}
}
