package sshnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// quote makes s one word for the node's login shell: single quotes, in
// which nothing is special but the quote itself.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// command is argv as one line for the login shell, under sudo -n when the
// client runs as another user for the node's files. The shell execs it
// rather than waiting on it (dash, a Debian login's sh, would fork): one
// process fewer per session; every login shell (sh, bash, zsh, fish)
// knows exec.
func (c *Client) command(argv []string) string {
	var b strings.Builder
	b.WriteString("exec ")
	if c.o.Sudo {
		b.WriteString("sudo -n -- ")
	}
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(a))
	}
	return b.String()
}

// ExitError is a command that ran on the node and failed.
type ExitError struct {
	Status int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("exit status %d: %s", e.Status, msg)
}

// Run runs argv on the node (under sudo -n with [Options.Sudo]), stdin
// fed from stdin (nil: none), and returns its standard output. Arguments
// are quoted, so no word of them is read by the shell; secrets go in
// stdin, never in argv. A failed command is an [*ExitError].
func (c *Client) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("node %s: run: no command", c.name)
	}
	out, err := c.run(ctx, c.command(argv), stdin)
	return out, c.opErr(argv[0], err)
}

// opErr names the node and the operation of a command that failed there;
// other errors say both already.
func (c *Client) opErr(op string, err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("node %s: %s: %w", c.name, op, err)
	}
	return err
}

// script runs a POSIX shell script with args ($1...) on the node.
func (c *Client) script(ctx context.Context, script string, stdin io.Reader, args ...string) ([]byte, error) {
	return c.run(ctx, c.command(append([]string{"sh", "-c", script, "sh"}, args...)), stdin)
}

func (c *Client) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	select {
	case c.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sessions }()
	s, err := c.conn.NewSession()
	if err != nil {
		return nil, fmt.Errorf("node %s: open an SSH session: %v (the connection was lost, or sshd allows fewer sessions at once than MaxSessions 10: run again)", c.name, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if stdin != nil {
		s.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Closing the channel ends the command's stdin and output; a
		// write in flight then fails its check and is not renamed.
		s.Close()
		return nil, ctx.Err()
	}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return stdout.Bytes(), nil
	case errors.As(err, &ee):
		if serr := c.sudoErr(ee.ExitStatus(), stderr.String()); serr != nil {
			return nil, serr
		}
		return stdout.Bytes(), &ExitError{Status: ee.ExitStatus(), Stderr: stderr.String()}
	case errors.As(err, &missing):
		return nil, fmt.Errorf("node %s: the connection was lost before the command finished (run again): %s", c.name, strings.TrimSpace(stderr.String()))
	}
	return nil, fmt.Errorf("node %s: %v", c.name, err)
}

// refusal is how sudo 1.8 and 1.9 say they will not run a command.
var refusal = regexp.MustCompile(`password is required|terminal is required|must have a tty|not in the sudoers file|not allowed to (execute|run)`)

// sudoErr explains a command sudo -n refused to run.
func (c *Client) sudoErr(status int, stderr string) error {
	if !c.o.Sudo {
		return nil
	}
	// sudo's own line, wherever it is: sshd may write before it (such as
	// "Could not chdir to home directory"). A warning of sudo's ("unable
	// to resolve host") before a command that failed on its own is not a
	// refusal: only sudo's refusals, with its status 1, are.
	for l := range strings.Lines(stderr) {
		l = strings.TrimSpace(l)
		switch {
		case status == 127 && strings.Contains(l, "sudo"):
			return fmt.Errorf("node %s: sudo is not installed there (%s): install it and allow %s passwordless sudo, or log in as root", c.name, l, c.target.User)
		case status == 1 && refusal.MatchString(l):
			return fmt.Errorf("node %s: sudo -n refused %s (%s): allow %s passwordless sudo (NOPASSWD in /etc/sudoers.d), or log in as root", c.name, c.target.User, l, c.target.User)
		}
	}
	return nil
}
