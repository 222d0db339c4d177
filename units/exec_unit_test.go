package units

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Drop-ins apply in lexical order of their names across the type-wide,
// dash-prefix and unit folders (the unit's own folder wins a name clash);
// the last value of a single setting wins, lists add up, an empty
// assignment resets a list.
func TestExecMergeRules(t *testing.T) {
	root := t.TempDir()
	service(t, root, "app-web.service", `[Unit]
Description=merge rules

[Service]
Type=simple
ExecStart=/bin/sleep 1
Environment=A=base B=base
LoadCredential=one:/etc/one
Restart=no
TimeoutStartSec=5s
`, map[string]string{
		"service.d/05-all.conf":         "[Service]\nEnvironment=ALL=1\n",
		"app-.service.d/10-prefix.conf": "[Service]\nRestart=always\nEnvironment=PREFIX=1\n",
		"app-.service.d/30-clash.conf":  "[Service]\nEnvironment=CLASH=prefix\n",
		"30-clash.conf":                 "[Service]\nEnvironment=CLASH=unit\n",
		"20-exec.conf":                  "[Service]\nExecStart=\nExecStart=/bin/sleep 2\nLoadCredential=two:/etc/two\nRestart=on-failure\n",
		"40-reset.conf":                 "[Service]\nEnvironment=\nEnvironment=AFTER=reset\nTimeoutStartSec=7s\n",
		"50-ignored.txt":                "[Service]\nRestart=always\n",
	})
	u, err := LoadExecUnit(root, User, "app-web.service")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range u.Files {
		names = append(names, filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f))
	}
	want := []string{"user/app-web.service", "service.d/05-all.conf", "app-.service.d/10-prefix.conf",
		"app-web.service.d/20-exec.conf", "app-web.service.d/30-clash.conf", "app-web.service.d/40-reset.conf"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("merge order\n got %v\nwant %v", names, want)
	}
	if got := u.ExecStart[0].Argv; !reflect.DeepEqual(got, []string{"/bin/sleep", "2"}) {
		t.Errorf("ExecStart after reset = %v, want [/bin/sleep 2]", got)
	}
	if u.Restart != "on-failure" || u.TimeoutStart != 7*time.Second {
		t.Errorf("last value should win: Restart=%s TimeoutStartSec=%s", u.Restart, u.TimeoutStart)
	}
	if !reflect.DeepEqual(u.Environment, []string{"AFTER=reset"}) {
		t.Errorf("Environment = %v, want only what follows the empty assignment", u.Environment)
	}
	if len(u.Credentials) != 2 || u.Credentials[0].ID != "one" || u.Credentials[1].ID != "two" {
		t.Errorf("LoadCredential= should add up: %+v", u.Credentials)
	}

	// Without the reset, Environment= adds up across files, and the
	// unit's own 30-clash.conf hides the prefix folder's.
	service(t, root, "app-web.service", "[Service]\nExecStart=/bin/true\nEnvironment=A=base\n", map[string]string{
		"40-reset.conf": "[Service]\nEnvironment=AFTER=1\n"})
	u, err = LoadExecUnit(root, User, "app-web.service")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"A=base", "ALL=1", "PREFIX=1", "CLASH=unit", "AFTER=1"}
	if !reflect.DeepEqual(u.Environment, wantEnv) {
		t.Errorf("Environment = %v, want %v", u.Environment, wantEnv)
	}
}

// An unknown directive, a known one exec does not implement, or an
// unknown section is refused with file:line; a drop-in that resets
// ExecStart= without setting it leaves no command.
func TestExecRefuses(t *testing.T) {
	cases := []struct {
		name, dropIn, want string
	}{
		{"unknown directive", "[Service]\n# a comment\nProtectEverything=yes\n", "bad.conf:3: unknown directive ProtectEverything= in [Service]"},
		{"unsupported directive", "[Service]\n\nExecStop=/bin/true\n", "bad.conf:3: ExecStop= is not supported by the exec manager"},
		{"unknown section", "[Timer]\nOnCalendar=daily\n", "bad.conf:2: unknown section [Timer]"},
		{"bad value", "[Service]\nRestart=sometimes\n", "bad.conf:2: Restart=sometimes"},
		{"bad time", "[Service]\nTimeoutStopSec=5 parsecs\n", `unknown unit "parsecs"`},
		{"unknown specifier", "[Service]\nEnvironment=X=%Z\n", "specifier %Z"},
		{"reset without set", "[Service]\nExecStart=\n", "no ExecStart= is left"},
		{"two commands", "[Service]\nExecStart=/bin/true\n", "2 ExecStart= commands"},
		{"unbalanced quote", "[Service]\nExecStart=\nExecStart=/bin/echo \"open\n", "unbalanced quotes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			service(t, root, "x.service", "[Service]\nExecStart=/bin/sleep 1\n", map[string]string{"bad.conf": c.dropIn})
			_, err := LoadExecUnit(root, User, "x.service")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// Command lines are split as systemd does: quotes anywhere in a word, C
// escapes, "@" for argv[0], specifiers per word; "$" variables at exec
// time.
func TestExecCommandLine(t *testing.T) {
	root := t.TempDir()
	service(t, root, "cmd.service", `[Service]
ExecStart=-@/bin/echo "my echo" "a b" 'c d' e\sf \x41\t x"y z"w 100%% %S/app %d/key %n ${V} $W $$HOME \;
ExecStartPre=/bin/true ; :/bin/echo $X
`, nil)
	u, err := LoadExecUnit(root, User, "cmd.service")
	if err != nil {
		t.Fatal(err)
	}
	c := u.ExecStart[0]
	state := filepath.Join(root, ".local", "state")
	creds := filepath.Join(state, "unibus-exec", "cmd.service", "credentials")
	want := []string{"my echo", "a b", "c d", "e f", "A\t", "xy zw", "100%", state + "/app", creds + "/key", "cmd.service", "${V}", "$W", "$$HOME", ";"}
	if c.Path != "/bin/echo" || !c.IgnoreFailure || !reflect.DeepEqual(c.Argv, want) {
		t.Fatalf("ExecStart = %q %v (ignore %v)\nwant argv %q", c.Path, c.Argv, c.IgnoreFailure, want)
	}
	if len(u.ExecStartPre) != 2 || u.ExecStartPre[0].Path != "/bin/true" || !u.ExecStartPre[1].NoEnvExpand {
		t.Fatalf("ExecStartPre = %+v, want two commands split at ;, the second with ':'", u.ExecStartPre)
	}

	env := map[string]string{"V": "one  value", "W": `two "three four"`}
	got := expandArgv(c.Argv, env)
	wantX := []string{"my echo", "a b", "c d", "e f", "A\t", "xy zw", "100%", state + "/app", creds + "/key", "cmd.service",
		"one  value", "two", "three four", "$HOME", ";"}
	if !reflect.DeepEqual(got, wantX) {
		t.Fatalf("expanded\n got %q\nwant %q", got, wantX)
	}
	if got := expandArgv([]string{"$UNSET", "${UNSET}", "pre$W"}, env); !reflect.DeepEqual(got, []string{"", "pre$W"}) {
		t.Errorf("unset $X is no word, unset ${X} an empty one, $X inside a word stays: %q", got)
	}
}

func TestParseSec(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "5": 5 * time.Second, "2min 3s": 123 * time.Second, "1.5s": 1500 * time.Millisecond,
		"100ms": 100 * time.Millisecond, "1h": time.Hour, "infinity": infinity,
	} {
		if got, err := parseSec(in); err != nil || got != want {
			t.Errorf("parseSec(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// A unit linked to /dev/null is masked, as in systemd.
func TestExecMasked(t *testing.T) {
	root := t.TempDir()
	service(t, root, "m.service", "[Service]\nExecStart=/bin/true\n", nil)
	p := filepath.Join(root, ".config", "systemd", "user", "m.service")
	if err := removeAndLink(p); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadExecUnit(root, User, "m.service"); err == nil || !strings.Contains(err.Error(), "masked") {
		t.Fatalf("masked unit: %v", err)
	}
}
