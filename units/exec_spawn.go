package units

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// maxCredential is systemd's CREDENTIAL_SIZE_MAX.
const maxCredential = 1 << 20

// prepare sets up one activation: state folders, credentials, the
// environment and the working folder.
func (s *supervisor) prepare() (env []string, wd string, err error) {
	u := s.u
	for _, d := range u.StateDirectories {
		if err := os.MkdirAll(d, u.StateDirectoryMode|0o700); err != nil {
			return nil, "", fmt.Errorf("StateDirectory=: %w", err)
		}
		if err := os.Chmod(d, u.StateDirectoryMode); err != nil {
			return nil, "", fmt.Errorf("StateDirectory=: %w", err)
		}
	}
	if err := s.loadCredentials(); err != nil {
		return nil, "", err
	}
	vars := map[string]string{"PATH": defaultPath}
	for _, k := range []string{"LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	if u.Scope == User {
		// The user manager's own environment: the node root is the home.
		vars["HOME"] = u.Root
		if me, err := user.Current(); err == nil {
			vars["USER"], vars["LOGNAME"] = me.Username, me.Username
		}
	}
	vars["INVOCATION_ID"] = s.st.InvocationID
	if u.Type == "notify" || u.NotifyAccess != "none" {
		vars["NOTIFY_SOCKET"] = s.notifyConn.LocalAddr().String()
	}
	if len(u.StateDirectories) > 0 {
		vars["STATE_DIRECTORY"] = strings.Join(u.StateDirectories, ":")
	}
	if len(u.Credentials) > 0 {
		vars["CREDENTIALS_DIRECTORY"] = u.CredentialsDir
	}
	// Environment=, then EnvironmentFile= (which wins), as in systemd.
	for _, kv := range u.Environment {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for _, f := range u.EnvironmentFiles {
		kvs, err := readEnvFile(f.Path)
		if errors.Is(err, os.ErrNotExist) && f.Optional {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("EnvironmentFile=%s: %w", f.Path, err)
		}
		for _, kv := range kvs {
			vars[kv[0]] = kv[1]
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	wd = u.WorkingDirectory
	if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
		if !u.WorkingDirectoryOptional {
			return nil, "", fmt.Errorf("WorkingDirectory=%s is not a folder", wd)
		}
		wd = "/"
	}
	return env, wd, nil
}

// loadCredentials copies each credential into a fresh private folder
// (0700, files 0400), which cleanup removes when the unit stops.
func (s *supervisor) loadCredentials() error {
	u := s.u
	if len(u.Credentials) == 0 {
		return nil
	}
	if err := os.RemoveAll(u.CredentialsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(u.CredentialsDir), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(u.CredentialsDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(u.CredentialsDir, 0o700); err != nil {
		return err
	}
	for _, c := range u.Credentials {
		data := c.Data
		if c.Path != "" {
			f, err := os.Open(c.Path)
			if err != nil {
				return fmt.Errorf("LoadCredential=%s:%s: %w", c.ID, c.Path, err)
			}
			data, err = io.ReadAll(io.LimitReader(f, maxCredential+1))
			f.Close()
			if err != nil {
				return fmt.Errorf("LoadCredential=%s:%s: %w", c.ID, c.Path, err)
			}
			if len(data) > maxCredential {
				return fmt.Errorf("LoadCredential=%s:%s: larger than 1 MiB", c.ID, c.Path)
			}
		}
		dst := filepath.Join(u.CredentialsDir, c.ID)
		os.Remove(dst) // a later LoadCredential= of the same name wins
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			return fmt.Errorf("credential %s: %w", c.ID, err)
		}
		_, werr := f.Write(data)
		cerr := f.Close()
		if err := errors.Join(werr, cerr, os.Chmod(dst, 0o400)); err != nil {
			return fmt.Errorf("credential %s: %w", c.ID, err)
		}
	}
	return nil
}

// readEnvFile reads NAME=VALUE lines: blank lines and lines starting with
// # or ; are skipped; a value may be in single quotes (literal) or double
// quotes (\" \\ \$ \` escapes); a trailing backslash continues the line.
func readEnvFile(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	pending := ""
	for n := 1; sc.Scan(); n++ {
		line := pending + sc.Text()
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		pending = ""
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !validEnvName(k) {
			return nil, fmt.Errorf("line %d: not a NAME=value assignment", n)
		}
		v = strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v[1 : len(v)-1])
		}
		out = append(out, [2]string{k, v})
	}
	return out, sc.Err()
}

var devNull = func() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}()

// spawn starts a command in a process group of its own, stdout and
// stderr to the unit's log (the supervisor's own stderr).
func (s *supervisor) spawn(c Command, env []string, wd string) (int, error) {
	argv := c.Argv
	if !c.NoEnvExpand {
		vars := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		argv = expandArgv(argv, vars)
	}
	pid, err := syscall.ForkExec(c.Path, argv, &syscall.ProcAttr{
		Dir:   wd,
		Env:   env,
		Files: []uintptr{devNull.Fd(), os.Stderr.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("cannot run %s: %w", c.Path, err)
	}
	return pid, nil
}

// openNotify opens the notify socket ($NOTIFY_SOCKET) for the life of the
// supervisor, across restarts. It lives in a private folder under the
// temporary folder: a node's root may be too deep for a socket path (108
// bytes). Each datagram's sender is checked as NotifyAccess= says.
func (s *supervisor) openNotify() error {
	dir, err := os.MkdirTemp("", "unibus-notify-")
	if err != nil {
		return err
	}
	s.notifyDir = dir
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	})
	if serr != nil {
		return fmt.Errorf("notify socket: SO_PASSCRED: %w", serr)
	}
	s.notifyConn = conn
	go s.readNotify()
	return nil
}

func (s *supervisor) closeNotify() {
	if s.notifyConn != nil {
		s.notifyConn.Close()
	}
	os.RemoveAll(s.notifyDir)
}

func (s *supervisor) readNotify() {
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	refused := map[int]bool{}
	for {
		n, oobn, _, _, err := s.notifyConn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		pid := senderPID(oob[:oobn])
		if !s.notifyAllowed(pid) {
			if !refused[pid] {
				refused[pid] = true
				s.logf("%s: notify message from PID %d ignored (NotifyAccess=%s)", s.u.Name, pid, s.u.NotifyAccess)
			}
			continue
		}
		m := map[string]string{}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		s.events <- event{notify: m}
	}
}

func senderPID(oob []byte) int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := syscall.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// notifyAllowed applies NotifyAccess=: main is the main process only; exec
// and all accept any process of the unit (here: any process of this user
// that can reach the private socket).
func (s *supervisor) notifyAllowed(pid int) bool {
	switch s.u.NotifyAccess {
	case "none":
		return false
	case "main":
		return pid != 0 && int64(pid) == s.mainPID.Load()
	}
	return true
}
