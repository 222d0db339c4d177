package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// This file reads values the way systemd does: words with quotes and C
// escapes (extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE),
// "%" specifiers, "$" variables in command lines, time spans, signals.

const whitespace = " \t\n\r"

// nextWord returns the first word of s and the rest. Quotes may open and
// close anywhere in a word (a"b c"d is one word, "ab cd"); a backslash
// starts a C escape inside and outside quotes. ok is false when s holds
// only white space.
func nextWord(s string) (word, rest string, ok bool, err error) {
	s = strings.TrimLeft(s, whitespace)
	if s == "" {
		return "", "", false, nil
	}
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			n, r, err := cunescapeOne(s[i+1:])
			if err != nil {
				return "", "", false, err
			}
			b.WriteString(r)
			i += 1 + n
		case quote != 0 && c == quote:
			quote = 0
			i++
		case quote != 0:
			b.WriteByte(c)
			i++
		case c == '\'' || c == '"':
			quote = c
			i++
		case strings.IndexByte(whitespace, c) >= 0:
			return b.String(), s[i:], true, nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	if quote != 0 {
		return "", "", false, fmt.Errorf("unbalanced quotes in %q", s)
	}
	return b.String(), "", true, nil
}

// words splits a whole value into words.
func words(s string) ([]string, error) {
	var out []string
	for {
		w, rest, ok, err := nextWord(s)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, w)
		s = rest
	}
}

// cunescapeOne decodes the escape after a backslash: how many bytes of s
// it used and what they stand for (systemd's cunescape_one).
func cunescapeOne(s string) (int, string, error) {
	if s == "" {
		return 0, "", errors.New("a backslash ends the value")
	}
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v",
		'\\': `\`, '"': `"`, '\'': "'", 's': " "}
	if r, ok := simple[s[0]]; ok {
		return 1, r, nil
	}
	num := func(n, base int) (int, string, error) {
		if len(s) < 1+n {
			return 0, "", fmt.Errorf("short escape \\%s", s)
		}
		v, err := strconv.ParseUint(s[1:1+n], base, 32)
		if err != nil || v == 0 || v > utf8.MaxRune {
			return 0, "", fmt.Errorf("invalid escape \\%s", s[:1+n])
		}
		if base == 16 && n == 2 || base == 8 {
			return 1 + n, string([]byte{byte(v)}), nil
		}
		return 1 + n, string(rune(v)), nil
	}
	switch s[0] {
	case 'x':
		return num(2, 16)
	case 'u':
		return num(4, 16)
	case 'U':
		return num(8, 16)
	}
	if s[0] >= '0' && s[0] <= '7' {
		if len(s) < 3 {
			return 0, "", fmt.Errorf("short octal escape \\%s", s)
		}
		v, err := strconv.ParseUint(s[:3], 8, 8)
		if err != nil || v == 0 {
			return 0, "", fmt.Errorf("invalid octal escape \\%s", s[:3])
		}
		return 3, string([]byte{byte(v)}), nil
	}
	return 0, "", fmt.Errorf("unknown escape \\%c", s[0])
}

// specifiers are what "%x" stands for in one unit.
type specifiers map[byte]string

// expand replaces "%x" specifiers; "%%" is a literal "%". An unknown
// specifier is an error, as in systemd.
func (sp specifiers) expand(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q ends in a lone %%; write %%%% for a literal %%", s)
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := sp[s[i]]
		if !ok {
			return "", fmt.Errorf("specifier %%%c in %q is not supported by the exec manager", s[i], s)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// expandArgv applies systemd's variable rules to a command line at exec
// time: a word that is exactly $NAME becomes the value split at white
// space (no word when unset or empty); ${NAME} anywhere in a word becomes
// the value as is; $$ is a literal $. A $NAME inside a word stays as it is.
func expandArgv(argv []string, env map[string]string) []string {
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		if len(a) > 1 && a[0] == '$' && a[1] != '{' && a[1] != '$' {
			if v, ok := env[a[1:]]; ok {
				out = append(out, splitRelaxed(v)...)
			}
			continue
		}
		out = append(out, expandWord(a, env))
	}
	return out
}

// splitRelaxed splits a variable's value into words as systemd does for a
// lone $NAME (EXTRACT_RELAX|EXTRACT_UNQUOTE): quotes group, a backslash
// keeps the next byte, an unclosed quote runs to the end.
func splitRelaxed(s string) []string {
	var out []string
	var b strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			in = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case strings.IndexByte(whitespace, c) >= 0:
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

func expandWord(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(env[s[i+2:i+2+end]])
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// infinity is a disabled timeout.
const infinity = time.Duration(math.MaxInt64)

var timeUnits = []struct {
	names []string
	d     time.Duration
}{
	{[]string{"usec", "us", "µs"}, time.Microsecond},
	{[]string{"msec", "ms"}, time.Millisecond},
	{[]string{"seconds", "second", "sec", "s", ""}, time.Second},
	{[]string{"minutes", "minute", "min", "m"}, time.Minute},
	{[]string{"hours", "hour", "hr", "h"}, time.Hour},
	{[]string{"days", "day", "d"}, 24 * time.Hour},
	{[]string{"weeks", "week", "w"}, 7 * 24 * time.Hour},
}

// parseSec reads a systemd time span ("90s", "2min 3s", "1.5", "infinity";
// a bare number is seconds).
func parseSec(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return infinity, nil
	}
	var total time.Duration
	rest := s
	for rest != "" {
		rest = strings.TrimLeft(rest, whitespace)
		n := 0
		for n < len(rest) && (rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.') {
			n++
		}
		if n == 0 {
			return 0, fmt.Errorf("time span %q: want a number with an optional unit (s, min, ms, h)", s)
		}
		v, err := strconv.ParseFloat(rest[:n], 64)
		if err != nil {
			return 0, fmt.Errorf("time span %q: %v", s, err)
		}
		rest = strings.TrimLeft(rest[n:], whitespace)
		u := 0
		for u < len(rest) && (rest[u] < '0' || rest[u] > '9') && strings.IndexByte(whitespace, rest[u]) < 0 {
			u++
		}
		unit, found := rest[:u], false
		for _, tu := range timeUnits {
			for _, name := range tu.names {
				if name == unit {
					total += time.Duration(v * float64(tu.d))
					found = true
				}
			}
		}
		if !found {
			return 0, fmt.Errorf("time span %q: unknown unit %q", s, unit)
		}
		rest = rest[u:]
	}
	return total, nil
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "ABRT": syscall.SIGABRT,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "WINCH": syscall.SIGWINCH, "PIPE": syscall.SIGPIPE,
	"ALRM": syscall.SIGALRM,
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	if sig, ok := signalNames[strings.TrimPrefix(s, "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want SIGTERM, SIGINT, a number, ...)", s)
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes or no)", s)
}
