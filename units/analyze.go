package units

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ErrNoAnalyzer is returned when systemd-analyze is not installed
// (Debian package "systemd").
var ErrNoAnalyzer = errors.New("systemd-analyze not found; install the systemd package")

// Verify runs "systemd-analyze verify" on the unit name and its drop-ins
// as rendered under nodeRoot (a node's tree, see [Scope.UnitDir]). Any
// complaint, even one systemd only warns about (an unknown option), is an
// error.
//
// Why a scratch root: systemd is not PID 1 on a build machine, and verify
// without --root loads the host's units and insists that the ExecStart
// binary exists on this machine. With --root it needs the targets the unit
// depends on (sysinit.target and friends) under that root. So the unit and
// its drop-ins are copied into a fresh root with stub targets and an
// executable placeholder at each ExecStart path (the real binary lives on
// the node). User units are checked by the user manager's rules
// (systemd-analyze --user), which cannot be combined with --root (v252:
// "Failed to initialize unit search paths"): their scratch tree is a
// XDG_CONFIG_HOME instead, and the placeholder is named in ExecStart= by
// its scratch path, the arguments kept.
func Verify(ctx context.Context, nodeRoot string, scope Scope, name string) error {
	scratch, err := scratchRoot(nodeRoot, scope, name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	out, err := analyze(ctx, scratch, scope, "verify", "--man=no", name)
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze verify %s: %s", name, strings.TrimSpace(strings.ReplaceAll(string(out), scratch, "")))
	}
	return nil
}

// Exposure is the outcome of "systemd-analyze security": the overall
// exposure level (0 safest, 10 unprotected) and the full report.
type Exposure struct {
	Score  float64
	Report string
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// Security runs "systemd-analyze security --offline=true" on the unit as
// rendered under nodeRoot, in the same scratch root as [Verify].
func Security(ctx context.Context, nodeRoot string, scope Scope, name string) (Exposure, error) {
	scratch, err := scratchRoot(nodeRoot, scope, name)
	if err != nil {
		return Exposure{}, err
	}
	defer os.RemoveAll(scratch)
	out, err := analyze(ctx, scratch, scope, "security", "--offline=true", "--no-pager", name)
	if err != nil {
		return Exposure{}, fmt.Errorf("systemd-analyze security %s: %w: %s", name, err, out)
	}
	m := overall.FindSubmatch(out)
	if m == nil {
		return Exposure{}, fmt.Errorf("systemd-analyze security %s: no overall exposure level in its output", name)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return Exposure{}, err
	}
	return Exposure{Score: score, Report: string(out)}, nil
}

// analyze runs systemd-analyze on the scratch tree of scope.
func analyze(ctx context.Context, scratch string, scope Scope, args ...string) ([]byte, error) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return nil, ErrNoAnalyzer
	}
	env := append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	if scope == User {
		args = append([]string{"--user"}, args...)
		env = append(env, "XDG_CONFIG_HOME="+filepath.Join(scratch, "config"),
			"XDG_RUNTIME_DIR="+filepath.Join(scratch, "run"), "HOME="+scratch, "XDG_CONFIG_DIRS=", "XDG_DATA_DIRS=")
	} else {
		args = append([]string{"--root=" + scratch}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = scratch
	out, err := cmd.CombinedOutput()
	return bytes.ReplaceAll(out, []byte(scratch), nil), err
}

// stubTargets are what a service with default dependencies pulls in.
var stubTargets = []string{"sysinit", "basic", "shutdown", "sockets", "paths", "timers", "slices",
	"local-fs", "network", "network-online", "multi-user", "default"}

func scratchRoot(nodeRoot string, scope Scope, name string) (string, error) {
	scratch, err := os.MkdirTemp("", "unibus-verify-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(scratch)
		return "", err
	}
	unitDir := filepath.Join(scratch, "etc", "systemd", "system")
	libDir := filepath.Join(scratch, "usr", "lib", "systemd", "system")
	if scope == User {
		unitDir = filepath.Join(scratch, "config", "systemd", "user")
		if err := os.Mkdir(filepath.Join(scratch, "run"), 0o700); err != nil {
			return fail(err)
		}
	}
	for _, d := range []string{unitDir, libDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	for _, t := range stubTargets {
		stub := fmt.Sprintf("[Unit]\nDescription=%s stub\n", t)
		if err := os.WriteFile(filepath.Join(libDir, t+".target"), []byte(stub), 0o644); err != nil {
			return fail(err)
		}
	}
	src := filepath.Join(nodeRoot, filepath.FromSlash(scope.UnitDir()))
	files := []string{name}
	dropIns, _ := filepath.Glob(filepath.Join(src, name+".d", "*.conf"))
	for _, d := range dropIns {
		rel, _ := filepath.Rel(src, d)
		files = append(files, rel)
	}
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return fail(err)
		}
		f, err := Parse(data)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", rel, err))
		}
		for _, exe := range f.Values("Service", "ExecStart") {
			fields := strings.Fields(exe)
			prog := ""
			if len(fields) > 0 {
				prog = strings.TrimLeft(fields[0], "-@:+!")
			}
			if !strings.HasPrefix(prog, "/") {
				continue
			}
			p := filepath.Join(scratch, prog)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fail(err)
			}
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				return fail(err)
			}
			if scope == User {
				for _, end := range []string{" ", "\n"} {
					data = bytes.ReplaceAll(data, []byte("ExecStart="+fields[0]+end), []byte("ExecStart="+strings.Replace(fields[0], prog, p, 1)+end))
				}
			}
		}
		dst := filepath.Join(unitDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fail(err)
		}
	}
	return scratch, nil
}
