// Package cli owns what the unibus programs print to a person: one
// "prog: error: ..." line, optional "prog: hint: ..." lines, and warnings.
//
// The rules, after age's cmd/age/tui.go: messages are lower-case, carry the
// program name as a prefix, end without a period, and go to standard error.
// Packages return errors; only the main packages turn them into output, so
// there is one place to change how unibus speaks.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// HintError is an error that knows what the user should do about it.
// Wrap an error with [WithHint]; [UI.Fail] prints the hint after the error.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint returns err with a hint attached, or nil when err is nil.
func WithHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: fmt.Sprintf(format, args...)}
}

// UsageError marks a mistake in the command line itself (exit code
// [UI.UsageExit]).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a [UsageError].
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// UI writes a program's messages to a stream, usually standard error.
type UI struct {
	Prog string
	W    io.Writer
	// UsageExit is the exit code of a usage error; 0 means 2, as Go's
	// flag package exits. unibus sets 1, as Terraform, since its 2 means
	// "the plan has changes".
	UsageExit int
}

// Warnf prints "prog: warning: ...".
func (u UI) Warnf(format string, args ...any) {
	fmt.Fprintf(u.W, "%s: warning: %s\n", u.Prog, oneLine(fmt.Sprintf(format, args...)))
}

// Printf prints "prog: ...", for progress a person should see.
func (u UI) Printf(format string, args ...any) {
	fmt.Fprintf(u.W, "%s: %s\n", u.Prog, oneLine(fmt.Sprintf(format, args...)))
}

// Fail prints err as one error line plus the hints found in its chain and
// returns the exit code: [UI.UsageExit] for a usage error, 1 otherwise.
func (u UI) Fail(err error) int {
	fmt.Fprintf(u.W, "%s: error: %s\n", u.Prog, oneLine(err.Error()))
	for e := err; e != nil; e = errors.Unwrap(e) {
		if h, ok := e.(*HintError); ok && h.Hint != "" {
			fmt.Fprintf(u.W, "%s: hint: %s\n", u.Prog, oneLine(h.Hint))
		}
	}
	var usage *UsageError
	if errors.As(err, &usage) {
		if u.UsageExit != 0 {
			return u.UsageExit
		}
		return 2
	}
	return 1
}

// oneLine keeps a message on one line whatever an underlying library put in
// it, so scripts and journald see exactly one record per message.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
