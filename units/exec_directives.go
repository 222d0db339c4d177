package units

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// directive is how the exec manager treats one setting.
type directive struct {
	// set applies one assignment; an empty value resets (a list to empty,
	// a single setting to its default).
	set func(u *ExecUnit, v string, sp specifiers) error
	// notEnforced: accepted, listed in UnitStatus.NotEnforced, not applied.
	notEnforced bool
	// unsupported: a systemd setting the exec manager refuses, and why.
	unsupported string
}

// Informational settings have neither set nor a flag: Description=, WantedBy=.
var info = directive{}

var ignoredBySystemd = directive{notEnforced: true}

func notEnforced(names ...string) map[string]directive {
	m := map[string]directive{}
	for _, n := range names {
		m[n] = ignoredBySystemd
	}
	return m
}

func merge(ms ...map[string]directive) map[string]directive {
	out := map[string]directive{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// directives by section. What is not here is refused as unknown.
var directives = map[string]map[string]directive{
	"Unit": merge(map[string]directive{"Description": info, "Documentation": info},
		// No other units run under exec: ordering and dependencies have
		// nothing to act on. No start rate limit either.
		notEnforced("Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts",
			"After", "Before", "OnFailure", "OnSuccess", "DefaultDependencies",
			"StartLimitIntervalSec", "StartLimitBurst", "StartLimitAction",
			"ConditionPathExists", "ConditionPathIsDirectory", "ConditionFileNotEmpty",
			"AssertPathExists", "RequiresMountsFor")),
	"Install": {"WantedBy": info, "RequiredBy": info, "UpheldBy": info, "Alias": info, "Also": info, "DefaultInstance": info},
	"Service": merge(serviceDirectives,
		// Sandboxing, identity and resource control need systemd (namespaces,
		// seccomp, cgroups, BPF, a dynamic user): accepted, not applied.
		notEnforced("User", "Group", "DynamicUser", "SupplementaryGroups",
			"NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "SecureBits",
			"RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime",
			"RestrictNamespaces", "KeyringMode", "RemoveIPC", "ProtectSystem", "ProtectHome",
			"PrivateTmp", "PrivateMounts", "PrivateDevices", "PrivateNetwork", "PrivateIPC",
			"PrivateUsers", "DevicePolicy", "DeviceAllow", "ProtectProc", "ProcSubset",
			"ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
			"ProtectControlGroups", "ProtectClock", "ProtectHostname", "SystemCallArchitectures",
			"SystemCallFilter", "SystemCallErrorNumber", "SystemCallLog", "RestrictAddressFamilies",
			"RestrictFileSystems", "RestrictNetworkInterfaces", "IPAddressDeny", "IPAddressAllow",
			"ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
			"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths",
			"LimitNOFILE", "LimitNPROC", "LimitCORE", "LimitMEMLOCK", "MemoryMax", "MemoryHigh",
			"CPUQuota", "CPUWeight", "IOWeight", "TasksMax", "Nice", "OOMScoreAdjust", "Slice",
			"WatchdogSec", "OOMPolicy")),
}

var serviceDirectives = map[string]directive{
	"Type": {set: func(u *ExecUnit, v string, _ specifiers) error {
		switch v {
		case "", "simple", "exec", "idle":
			u.Type = "simple"
		case "notify":
			u.Type = "notify"
		default:
			return fmt.Errorf("type %s is not supported by the exec manager (simple, exec, idle, notify)", v)
		}
		return nil
	}},
	"NotifyAccess": {set: func(u *ExecUnit, v string, _ specifiers) error {
		switch v {
		case "", "none", "main", "exec", "all":
			u.NotifyAccess = v
			return nil
		}
		return errors.New("want none, main, exec or all")
	}},
	"ExecStartPre": {set: func(u *ExecUnit, v string, sp specifiers) error {
		return setCommands(&u.ExecStartPre, v, sp)
	}},
	"ExecStart": {set: func(u *ExecUnit, v string, sp specifiers) error {
		return setCommands(&u.ExecStart, v, sp)
	}},
	"Environment": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if v == "" {
			u.Environment = nil
			return nil
		}
		ws, err := words(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w, err = sp.expand(w); err != nil {
				return err
			}
			name, _, ok := strings.Cut(w, "=")
			if !ok || !validEnvName(name) {
				return fmt.Errorf("%q is not a NAME=value assignment", w)
			}
			u.Environment = append(u.Environment, w)
		}
		return nil
	}},
	"EnvironmentFile": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if v == "" {
			u.EnvironmentFiles = nil
			return nil
		}
		optional := strings.HasPrefix(v, "-")
		p, err := sp.expand(strings.TrimPrefix(v, "-"))
		if err != nil {
			return err
		}
		if !filepath.IsAbs(p) {
			return errors.New("the path must be absolute")
		}
		u.EnvironmentFiles = append(u.EnvironmentFiles, EnvFile{Path: p, Optional: optional})
		return nil
	}},
	"WorkingDirectory": {set: func(u *ExecUnit, v string, sp specifiers) error {
		u.WorkingDirectoryOptional = strings.HasPrefix(v, "-")
		v = strings.TrimPrefix(v, "-")
		switch {
		case v == "":
			u.WorkingDirectory = "/"
			return nil
		case v == "~":
			u.WorkingDirectory = sp['h']
			return nil
		}
		p, err := sp.expand(v)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(p) {
			return errors.New("the path must be absolute or ~")
		}
		u.WorkingDirectory = p
		return nil
	}},
	"StateDirectory": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if v == "" {
			u.StateDirectories = nil
			return nil
		}
		ws, err := words(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w, err = sp.expand(w); err != nil {
				return err
			}
			if strings.Contains(w, ":") {
				return fmt.Errorf("%q: the name:link form is not supported by the exec manager", w)
			}
			clean := filepath.Clean(w)
			if filepath.IsAbs(w) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
				return fmt.Errorf("%q must be a relative path inside the state folder", w)
			}
			u.StateDirectories = append(u.StateDirectories, filepath.Join(sp['S'], clean))
		}
		return nil
	}},
	"StateDirectoryMode": {set: func(u *ExecUnit, v string, _ specifiers) error {
		m, err := parseMode(v, 0o7777, 0o755)
		u.StateDirectoryMode = m
		return err
	}},
	"UMask": {set: func(u *ExecUnit, v string, _ specifiers) error {
		m, err := parseMode(v, 0o777, 0o022)
		u.UMask = m
		return err
	}},
	"LoadCredential": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if v == "" {
			u.Credentials = nil
			return nil
		}
		id, p, ok := strings.Cut(v, ":")
		if !ok {
			return errors.New("want ID:PATH (credentials the service manager itself received are not supported by exec)")
		}
		id, err := credentialID(id, sp)
		if err != nil {
			return err
		}
		if p, err = sp.expand(p); err != nil {
			return err
		}
		if !filepath.IsAbs(p) {
			return fmt.Errorf("path %q must be absolute", p)
		}
		u.Credentials = append(u.Credentials, Credential{ID: id, Path: p})
		return nil
	}},
	"SetCredential": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if v == "" {
			u.Credentials = nil
			return nil
		}
		id, data, ok := strings.Cut(v, ":")
		if !ok {
			return errors.New("want ID:DATA")
		}
		id, err := credentialID(id, sp)
		if err != nil {
			return err
		}
		if data, err = sp.expand(data); err != nil {
			return err
		}
		u.Credentials = append(u.Credentials, Credential{ID: id, Data: []byte(unescapeAll(data))})
		return nil
	}},
	"TimeoutStartSec": {set: timeout(func(u *ExecUnit) *time.Duration { return &u.TimeoutStart })},
	"TimeoutStopSec":  {set: timeout(func(u *ExecUnit) *time.Duration { return &u.TimeoutStop })},
	"TimeoutSec": {set: func(u *ExecUnit, v string, sp specifiers) error {
		if err := timeout(func(u *ExecUnit) *time.Duration { return &u.TimeoutStart })(u, v, sp); err != nil {
			return err
		}
		u.TimeoutStop = u.TimeoutStart
		return nil
	}},
	"RestartSec": {set: func(u *ExecUnit, v string, _ specifiers) error {
		if v == "" {
			u.RestartDelay = defaultRestartDelay
			return nil
		}
		d, err := parseSec(v)
		u.RestartDelay = d
		return err
	}},
	"Restart": {set: func(u *ExecUnit, v string, _ specifiers) error {
		switch v {
		case "":
			u.Restart = "no"
		case "no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog":
			u.Restart = v
		default:
			return errors.New("want no, always, on-success, on-failure, on-abnormal, on-abort or on-watchdog")
		}
		return nil
	}},
	"KillSignal":      {set: signalSetting(func(u *ExecUnit) *syscall.Signal { return &u.KillSignal }, syscall.SIGTERM)},
	"FinalKillSignal": {set: signalSetting(func(u *ExecUnit) *syscall.Signal { return &u.FinalKillSignal }, syscall.SIGKILL)},
	"SendSIGKILL": {set: func(u *ExecUnit, v string, _ specifiers) error {
		if v == "" {
			u.SendSIGKILL = true
			return nil
		}
		b, err := parseBool(v)
		u.SendSIGKILL = b
		return err
	}},
	"KillMode": {set: func(u *ExecUnit, v string, _ specifiers) error {
		switch v {
		case "":
			u.KillMode = "control-group"
		case "control-group", "mixed", "process":
			u.KillMode = v
		default:
			return errors.New("want control-group, mixed or process (the exec manager applies control-group to the process group)")
		}
		return nil
	}},
	"ExecStop":      {unsupported: "no stop commands; KillSignal= stops the service"},
	"ExecStopPost":  {unsupported: "no stop commands"},
	"ExecReload":    {unsupported: "no reload"},
	"ExecStartPost": {unsupported: "no post-start commands"},
}

const (
	defaultTimeout      = 90 * time.Second
	defaultRestartDelay = 100 * time.Millisecond
)

// timeout sets a Timeout*Sec=; 0 disables it, as in systemd.
func timeout(field func(u *ExecUnit) *time.Duration) func(u *ExecUnit, v string, _ specifiers) error {
	return func(u *ExecUnit, v string, _ specifiers) error {
		f := field(u)
		if v == "" {
			*f = defaultTimeout
			return nil
		}
		d, err := parseSec(v)
		if err != nil {
			return err
		}
		if d == 0 {
			d = infinity
		}
		*f = d
		return nil
	}
}

func signalSetting(field func(u *ExecUnit) *syscall.Signal, def syscall.Signal) func(u *ExecUnit, v string, _ specifiers) error {
	return func(u *ExecUnit, v string, _ specifiers) error {
		f := field(u)
		if v == "" {
			*f = def
			return nil
		}
		sig, err := parseSignal(v)
		*f = sig
		return err
	}
}

func parseMode(v string, max, def os.FileMode) (os.FileMode, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || os.FileMode(n) > max {
		return def, fmt.Errorf("%q is not an octal mode up to %o", v, max)
	}
	return os.FileMode(n), nil
}

func credentialID(id string, sp specifiers) (string, error) {
	id, err := sp.expand(id)
	if err != nil {
		return "", err
	}
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 255 {
		return "", fmt.Errorf("credential name %q must be a valid file name", id)
	}
	return id, nil
}

func validEnvName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for _, c := range n {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unescapeAll decodes C escapes in SetCredential= data; a bad escape is
// kept as written.
func unescapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if n, r, err := cunescapeOne(s[i+1:]); err == nil {
				b.WriteString(r)
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// setCommands parses one Exec*= line the way systemd's config_parse_exec
// does: prefixes "-" (ignore failure), "@" (argv[0] follows), ":" (no
// variable expansion), "+", "!", "!!" (privilege modes, which make no
// difference here); then words with quotes and C escapes, specifiers
// resolved per word; a lone ";" separates commands and "\;" is a literal
// ";". An empty assignment resets the list.
func setCommands(list *[]Command, v string, sp specifiers) error {
	v = strings.TrimLeft(v, whitespace)
	if v == "" {
		*list = nil
		return nil
	}
	for rest := v; ; {
		first, r, ok, err := nextWord(rest)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		rest = r
		var c Command
		argv0 := false
		for len(first) > 0 {
			switch {
			case first[0] == '-' && !c.IgnoreFailure:
				c.IgnoreFailure = true
			case first[0] == '@' && !argv0:
				argv0 = true
			case first[0] == ':' && !c.NoEnvExpand:
				c.NoEnvExpand = true
			case first[0] == '+' || first[0] == '!':
			default:
				goto prefixDone
			}
			first = first[1:]
		}
	prefixDone:
		p, err := sp.expand(first)
		if err != nil {
			return err
		}
		if p == "" {
			return errors.New("empty executable path")
		}
		if !filepath.IsAbs(p) {
			if strings.Contains(p, "/") {
				return fmt.Errorf("executable %q: neither an absolute path nor a plain name", p)
			}
			found := ""
			for _, dir := range strings.Split(defaultPath, ":") {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					found = filepath.Join(dir, p)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("executable %q not found in %s", p, defaultPath)
			}
			p = found
		}
		c.Path = p
		if !argv0 {
			c.Argv = append(c.Argv, p)
		}
		semicolon := false
		for {
			rest = strings.TrimLeft(rest, whitespace)
			if rest == "" {
				break
			}
			if rest[0] == ';' && (len(rest) == 1 || strings.IndexByte(whitespace, rest[1]) >= 0) {
				rest, semicolon = rest[1:], true
				break
			}
			if strings.HasPrefix(rest, `\;`) && (len(rest) == 2 || strings.IndexByte(whitespace, rest[2]) >= 0) {
				c.Argv = append(c.Argv, ";")
				rest = rest[2:]
				continue
			}
			w, r, _, err := nextWord(rest)
			if err != nil {
				return err
			}
			rest = r
			if w, err = sp.expand(w); err != nil {
				return err
			}
			c.Argv = append(c.Argv, w)
		}
		if len(c.Argv) == 0 {
			return errors.New("empty argv[0] after @")
		}
		*list = append(*list, c)
		if !semicolon {
			return nil
		}
	}
}

// defaultPath is systemd's PATH for services and for resolving a plain
// executable name.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
