package sshnode

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/unibus/unibus/provision"
)

var _ provision.Snapshotter = (*Transport)(nil)

// snapshotScript takes a snapshot in one session: the recipient of the
// identity ("r RECIPIENT"), every file's mode ("m MODE PATH") and hash
// ("HASH  PATH"), each record ending in NUL, then "t", then a tar of the
// public files. A process per tool, not per file: a node's files cost
// the same one round trip however many there are. It needs GNU stat,
// sha256sum, find and tar (Debian, Ubuntu, Fedora, Arch...).
//
// %[1]s is the identity, %[2]s the keygen command (argv), %[3]s its
// argv[0], %[4]s the find predicate of the public files, all quoted, and
// %[5]s the run of another command (see runRecord) or nothing; $1 is the
// root, the rest the paths.
const snapshotScript = `root=$1; shift
%[5]s
[ -d "$root" ] || exit 0
cd "$root" || exit 1
id=%[1]s
if [ -e "$id" ]; then
	if command -v %[3]s >/dev/null 2>&1; then r=$(%[2]s -y "$id" 2>/dev/null) || exit 4
	else
		[ "$(grep -c '^AGE-SECRET-KEY-1' "$id")" = 1 ] || exit 4
		r=$(sed -n 's/^# public key: //p' "$id")
	fi
	printf 'r %%s\0' "$r"
fi
for p do
	shift
	[ -e "$p" ] && set -- "$@" "$p"
done
[ $# -gt 0 ] || { printf 't\0'; exit 0; }
find "$@" -type f -exec stat --printf 'm %%a %%n\0' -- {} + || exit 1
find "$@" -type f -exec sha256sum -z -- {} + || exit 1
printf 't\0'
find "$@" -type f %[4]s -exec tar -c -f - --no-recursion --hard-dereference -- {} + || exit 1`

// runRecord runs a shell function (%[1]s: its body) with its arguments
// (%[2]s, quoted) and prints "x STATUS LENGTH", NUL, then its output
// (stdout and stderr) of LENGTH bytes, counted as bytes (LC_ALL=C).
const runRecord = `run() {
%[1]s
}
x=$(run %[2]s 2>&1); xs=$?
LC_ALL=C; printf 'x %%d %%d\0%%s' "$xs" "${#x}" "$x"; unset LC_ALL`

// Snapshot implements [provision.Snapshotter]: one session for the
// node's files, their public contents and the identity's recipient.
func (t *Transport) Snapshot(ctx context.Context, r provision.SnapshotRequest) (*provision.Snapshot, error) {
	snap, _, _, err := t.SnapshotWith(ctx, r, "")
	return snap, err
}

// SnapshotWith is [Transport.Snapshot] that also runs a POSIX shell
// function (body, called with args) on the node in the same session, the
// service manager's query say: one round trip for all that plan reads of
// a node. It returns the function's output (stdout and stderr, without
// trailing newlines, as $(...) keeps it) and, when it failed, an
// [*ExitError] with that output.
func (t *Transport) SnapshotWith(ctx context.Context, r provision.SnapshotRequest, body string, args ...string) (*provision.Snapshot, []byte, error, error) {
	kg := t.keygenArgv()
	run := ""
	if body != "" {
		run = fmt.Sprintf(runRecord, body, quoteAll(args))
	}
	script := fmt.Sprintf(snapshotScript, quote(rel(r.Identity)), quoteAll(kg), quote(kg[0]), publicPredicate(r), run)
	params := []string{t.root}
	for _, p := range r.Paths {
		params = append(params, rel(p))
	}
	out, err := t.c.script(ctx, script, nil, params...)
	switch {
	case isStatus(err, 4):
		return nil, nil, nil, fmt.Errorf("node %s: %s is not an age identity file with exactly one key (want one AGE-SECRET-KEY-1... line)", t.c.name, t.abs(r.Identity))
	case err != nil && strings.Contains(err.Error(), "unrecognized option"):
		return nil, nil, nil, fmt.Errorf("node %s: read the files under %s: %v (unibus needs GNU coreutils, findutils and tar on the node)", t.c.name, t.root, err)
	case err != nil:
		return nil, nil, nil, t.c.opErr("read the files under "+t.root, err)
	}
	snap, ran, err := parseSnapshot(out)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("node %s: read the files under %s: %v", t.c.name, t.root, err)
	}
	if body != "" && ran == nil {
		return nil, nil, nil, fmt.Errorf("node %s: read the files under %s: the command run beside gave no record", t.c.name, t.root)
	}
	if snap.Recipient != "" {
		if snap.Recipient, err = parseRecipient([]byte(snap.Recipient)); err != nil {
			return nil, nil, nil, fmt.Errorf("node %s: %s is not an age identity file with exactly one key (%v): want one AGE-SECRET-KEY-1... line", t.c.name, t.abs(r.Identity), err)
		}
	}
	for p := range snap.Public {
		if !r.Public(p) { // the node's find and ours disagree: trust ours
			delete(snap.Public, p)
		}
	}
	if ran == nil {
		return snap, nil, nil, nil
	}
	var runErr error
	if ran.status != 0 {
		runErr = &ExitError{Status: ran.status, Stderr: string(ran.out)} // the caller says whose
	}
	return snap, ran.out, runErr, nil
}

// ranCommand is what runRecord printed.
type ranCommand struct {
	status int
	out    []byte
}

func quoteAll(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}

// publicPredicate is find's test for r's public files, quoted for the
// shell: under one of the public folders or named *ext, never the
// identity.
func publicPredicate(r provision.SnapshotRequest) string {
	var alts []string
	for _, d := range r.PublicDirs {
		alts = append(alts, "-path "+quote(globEscape(rel(d))+"/*"))
	}
	if r.PublicExt != "" {
		alts = append(alts, "-name "+quote("*"+globEscape(r.PublicExt)))
	}
	if len(alts) == 0 {
		return "-false"
	}
	return `\( ` + strings.Join(alts, " -o ") + ` \) ! -path ` + quote(globEscape(rel(r.Identity)))
}

// globEscape makes s match itself in a find -path or -name pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func parseSnapshot(out []byte) (*provision.Snapshot, *ranCommand, error) {
	snap := &provision.Snapshot{Public: map[string][]byte{}}
	var ran *ranCommand
	modes := map[string]fs.FileMode{}
	var order []string
	hashes := map[string]string{}
	rest := out
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, nil, fmt.Errorf("unexpected output %q", trunc(rest))
		}
		rec := string(rest[:i])
		rest = rest[i+1:]
		switch {
		case strings.HasPrefix(rec, "x "):
			var st, n int
			if _, err := fmt.Sscanf(rec, "x %d %d", &st, &n); err != nil || n < 0 || n > len(rest) {
				return nil, nil, fmt.Errorf("unexpected command record %q", rec)
			}
			ran = &ranCommand{status: st, out: rest[:n]}
			rest = rest[n:]
		case rec == "t":
			if err := untar(rest, snap.Public); err != nil {
				return nil, nil, err
			}
			rest = nil
		case strings.HasPrefix(rec, "r "):
			snap.Recipient = rec[2:] // checked by the caller
		case strings.HasPrefix(rec, "m "):
			mode, name, ok := strings.Cut(rec[2:], " ")
			m, err := strconv.ParseUint(mode, 8, 32)
			if !ok || err != nil {
				return nil, nil, fmt.Errorf("unexpected mode record %q", rec)
			}
			name = clean(name)
			modes[name] = fs.FileMode(m).Perm()
			order = append(order, name)
		case len(rec) > 66 && rec[64:66] == "  ":
			hashes[clean(rec[66:])] = rec[:64]
		default:
			return nil, nil, fmt.Errorf("unexpected record %q", rec)
		}
	}
	for _, p := range order {
		h, ok := hashes[p]
		if !ok {
			return nil, nil, fmt.Errorf("no hash for %s", p)
		}
		snap.Files = append(snap.Files, provision.FileState{Path: p, Mode: modes[p], SHA256: h})
	}
	return snap, ran, nil
}

// untar reads the tar archives in b (find may run tar more than once)
// into files.
func untar(b []byte, files map[string][]byte) error {
	for {
		for len(b) >= 512 && allZero(b[:512]) {
			b = b[512:] // the end of an archive, and its padding
		}
		if len(b) == 0 {
			return nil
		}
		r := bytes.NewReader(b)
		tr := tar.NewReader(r)
		n := 0
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("the public files' tar: %v", err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("the public files' tar: %s: %v", h.Name, err)
			}
			files[clean(h.Name)] = data
			n++
		}
		if n == 0 {
			return errors.New("the public files' tar: no file in it")
		}
		b = b[len(b)-r.Len():]
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// clean is a path as the node printed it ("./etc/x", or "etc/x" from
// tar) relative to the root.
func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func trunc(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
