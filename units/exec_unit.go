package units

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ExecUnit is a service as the exec manager runs it: the unit file and its
// drop-ins merged by systemd's rules, specifiers resolved. "$" variables
// in command lines are left for exec time, as systemd does.
type ExecUnit struct {
	Name  string `json:"name"`
	Root  string `json:"root"`
	Scope Scope  `json:"scope"`
	// Files are the base file and the drop-ins in merge order, with the
	// SHA-256 of each as it was read.
	Files  []string          `json:"files"`
	Hashes map[string]string `json:"hashes"`

	Type         string    `json:"type"`
	NotifyAccess string    `json:"notify_access"`
	ExecStartPre []Command `json:"exec_start_pre,omitempty"`
	ExecStart    []Command `json:"exec_start"`

	Environment      []string  `json:"environment,omitempty"` // NAME=value, in order
	EnvironmentFiles []EnvFile `json:"environment_files,omitempty"`
	WorkingDirectory string    `json:"working_directory"`
	// WorkingDirectoryOptional: "-" prefix, a missing folder is no error.
	WorkingDirectoryOptional bool `json:"working_directory_optional,omitempty"`

	StateDirectories   []string     `json:"state_directories,omitempty"` // absolute
	StateDirectoryMode os.FileMode  `json:"state_directory_mode"`
	Credentials        []Credential `json:"credentials,omitempty"`
	CredentialsDir     string       `json:"credentials_dir"`

	TimeoutStart    time.Duration  `json:"timeout_start"`
	TimeoutStop     time.Duration  `json:"timeout_stop"`
	Restart         string         `json:"restart"`
	RestartDelay    time.Duration  `json:"restart_sec"` // RestartSec=
	KillSignal      syscall.Signal `json:"kill_signal"`
	FinalKillSignal syscall.Signal `json:"final_kill_signal"`
	SendSIGKILL     bool           `json:"send_sigkill"`
	KillMode        string         `json:"kill_mode"`
	UMask           os.FileMode    `json:"umask"`

	// NotEnforced are the directives given that the exec manager accepts
	// but cannot apply, as "Name=", in the order first seen.
	NotEnforced []string `json:"not_enforced,omitempty"`
}

// Command is one Exec*= command line after unquoting and specifiers.
type Command struct {
	Path string   `json:"path"`
	Argv []string `json:"argv"` // Argv[0] is the path unless "@" gave another
	// IgnoreFailure is the "-" prefix; NoEnvExpand the ":" prefix.
	IgnoreFailure bool `json:"ignore_failure,omitempty"`
	NoEnvExpand   bool `json:"no_env_expand,omitempty"`
}

// EnvFile is one EnvironmentFile=; Optional is the "-" prefix.
type EnvFile struct {
	Path     string `json:"path"`
	Optional bool   `json:"optional,omitempty"`
}

// Credential is a LoadCredential=ID:PATH (Path set) or SetCredential=ID:DATA.
type Credential struct {
	ID   string `json:"id"`
	Path string `json:"path,omitempty"`
	Data []byte `json:"data,omitempty"`
}

// execDirs are the folders the exec manager maps systemd's to, under a
// node's root. System scope mirrors the host (var/lib, var/cache, ...);
// user scope the XDG folders of the root as home.
type execDirs struct {
	state, cache, logs, config, runtime, manager string
}

func dirsFor(root string, scope Scope) execDirs {
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	if scope == User {
		d := execDirs{state: j(".local", "state"), cache: j(".cache"), logs: j(".local", "state", "log"), config: j(".config")}
		d.manager = filepath.Join(d.state, "unibus-exec")
		d.runtime = filepath.Join(d.manager, "run")
		return d
	}
	d := execDirs{state: j("var", "lib"), cache: j("var", "cache"), logs: j("var", "log"), config: j("etc"), runtime: j("run")}
	d.manager = filepath.Join(d.state, "unibus-exec")
	return d
}

// ManagerDir is where the exec manager keeps a node's supervisor state:
// per unit a folder with status.json, the log and the credentials.
func ManagerDir(root string, scope Scope) string { return dirsFor(root, scope).manager }

// StateRoot is what %S stands for under the exec manager: the folder
// StateDirectory= names are made in.
func StateRoot(root string, scope Scope) string { return dirsFor(root, scope).state }

func (d execDirs) unitDir(name string) string { return filepath.Join(d.manager, name) }

func specifiersFor(root string, scope Scope, name, fragment string, d execDirs) specifiers {
	stem := strings.TrimSuffix(name, path.Ext(name))
	prefix, instance, _ := strings.Cut(stem, "@")
	final := prefix
	if i := strings.LastIndexByte(prefix, '-'); i >= 0 {
		final = prefix[i+1:]
	}
	home := "/root"
	if scope == User {
		home = root
	}
	sp := specifiers{'n': name, 'N': stem, 'p': prefix, 'i': instance, 'I': instance, 'j': final,
		'S': d.state, 'C': d.cache, 'L': d.logs, 'E': d.config, 't': d.runtime,
		'd': filepath.Join(d.unitDir(name), "credentials"), 'h': home,
		'T': os.TempDir(), 'V': "/var/tmp", 'y': fragment, 'Y': filepath.Dir(fragment),
		'U': strconv.Itoa(os.Getuid())}
	if u, err := user.Current(); err == nil {
		sp['u'] = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		sp['H'] = h
		sp['l'], _, _ = strings.Cut(h, ".")
	}
	return sp
}

// LoadExecUnit reads a service unit and its drop-ins under a node's root
// and merges them as systemd does: files in order, the last assignment
// of a single setting wins, list settings add up, an empty assignment
// resets. An unknown directive, or one the exec manager does not
// implement, is an error naming file:line.
func LoadExecUnit(root string, scope Scope, name string) (*ExecUnit, error) {
	if !strings.HasSuffix(name, ".service") {
		return nil, fmt.Errorf("unit %s: the exec manager runs .service units only", name)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	unitDir := filepath.Join(root, filepath.FromSlash(scope.UnitDir()))
	base, dropIns, err := UnitFiles(unitDir, name)
	if err != nil {
		return nil, err
	}
	d := dirsFor(root, scope)
	u := newExecUnit(name, root, scope, filepath.Join(d.unitDir(name), "credentials"))
	sp := specifiersFor(root, scope, name, base, d)
	for _, f := range append([]string{base}, dropIns...) {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		u.Files = append(u.Files, f)
		u.Hashes[f] = hex.EncodeToString(sum[:])
		entries, err := readEntries(f)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if err := u.apply(e, sp); err != nil {
				return nil, err
			}
		}
	}
	return u, u.check(base)
}

// newExecUnit has systemd's defaults.
func newExecUnit(name, root string, scope Scope, creds string) *ExecUnit {
	return &ExecUnit{Name: name, Root: root, Scope: scope, Hashes: map[string]string{}, CredentialsDir: creds,
		Type: "simple", WorkingDirectory: "/", StateDirectoryMode: 0o755,
		TimeoutStart: defaultTimeout, TimeoutStop: defaultTimeout, Restart: "no", RestartDelay: defaultRestartDelay,
		KillSignal: syscall.SIGTERM, FinalKillSignal: syscall.SIGKILL, SendSIGKILL: true, KillMode: "control-group",
		UMask: 0o022}
}

func (u *ExecUnit) apply(e entry, sp specifiers) error {
	if strings.HasPrefix(e.section, "X-") || strings.HasPrefix(e.name, "X-") {
		return nil
	}
	table, ok := directives[e.section]
	if !ok {
		return fmt.Errorf("%s: unknown section [%s]; the exec manager reads [Unit], [Service] and [Install]", e.where(), e.section)
	}
	d, ok := table[e.name]
	if !ok {
		return fmt.Errorf("%s: unknown directive %s= in [%s]; the exec manager refuses what it does not know", e.where(), e.name, e.section)
	}
	switch {
	case d.unsupported != "":
		return fmt.Errorf("%s: %s= is not supported by the exec manager (%s); run this node under systemd", e.where(), e.name, d.unsupported)
	case d.notEnforced:
		if n := e.name + "="; !slices.Contains(u.NotEnforced, n) {
			u.NotEnforced = append(u.NotEnforced, n)
		}
		return nil
	case d.set == nil:
		return nil // informational: Description=, WantedBy=, ...
	}
	if err := d.set(u, e.value, sp); err != nil {
		return fmt.Errorf("%s: %s=%s: %v", e.where(), e.name, e.value, err)
	}
	return nil
}

func (u *ExecUnit) check(base string) error {
	switch len(u.ExecStart) {
	case 0:
		return fmt.Errorf("%s: no ExecStart= is left after merging %d file(s); a drop-in that resets it with an empty ExecStart= must set it again", base, len(u.Files))
	case 1:
	default:
		return fmt.Errorf("%s: %d ExecStart= commands after merging %d file(s); a service that is not Type=oneshot has exactly one (reset the list with an empty ExecStart= first)", base, len(u.ExecStart), len(u.Files))
	}
	if u.NotifyAccess == "" {
		u.NotifyAccess = "none"
		if u.Type == "notify" {
			u.NotifyAccess = "main"
		}
	}
	return nil
}
