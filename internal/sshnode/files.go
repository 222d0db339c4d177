package sshnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/unibus/unibus/provision"
)

// Transport is a node's files under Root, a path on the node, reached
// through c: [provision.Transport] and [provision.Writer] over SSH.
type Transport struct {
	c    *Client
	root string
	// keygen is the command that makes (-o FILE) and reads (-y FILE) the
	// node's age identity there: Options.AgeKeygen unless set by
	// [Transport.WithKeygen].
	keygen []string
}

// WithKeygen makes and reads the node's age identity with argv (as
// age-keygen: argv -o FILE, argv -y FILE), such as the node's own
// "membershipd age-keygen".
func (t *Transport) WithKeygen(argv ...string) *Transport {
	c := *t
	c.keygen = argv
	return &c
}

func (t *Transport) keygenArgv() []string {
	if len(t.keygen) > 0 {
		return t.keygen
	}
	return []string{t.c.o.AgeKeygen}
}

var _ provision.Writer = (*Transport)(nil)

// Transport is the node's files under root, an absolute path on the node.
func (c *Client) Transport(root string) (*Transport, error) {
	if root == "" {
		root = "/"
	}
	if !path.IsAbs(root) {
		return nil, fmt.Errorf("node %s: root %q must be an absolute path on the node", c.name, root)
	}
	return &Transport{c: c, root: path.Clean(root)}, nil
}

// Client is the connection t uses.
func (t *Transport) Client() *Client { return t.c }

// abs is p (relative to the root) on the node; it never leaves the root.
func (t *Transport) abs(p string) string { return path.Join(t.root, path.Clean("/"+p)) }

// rel is p relative to the root, as find prints it: "./etc/x" for
// "etc/x". The ./ keeps a name that starts with - from being an option.
func rel(p string) string { return "./" + strings.TrimPrefix(path.Clean("/"+p), "/") }

// filesScript prints "mode sha256 path\0" for every regular file at or
// under each argument, relative to the root ($1). One script for all
// paths: one round trip however many files.
const filesScript = `root=$1; shift
[ -d "$root" ] || exit 0
cd "$root" || exit 1
for p do
	[ -e "$p" ] || continue
	find "$p" -type f -exec sh -c 'for f do
		m=$(stat -c %a "$f") && h=$(sha256sum < "$f") || exit 1
		printf "%s %s %s\0" "$m" "${h%% *}" "$f"
	done' sh {} + || exit 1
done`

// Files implements [provision.Transport].
func (t *Transport) Files(ctx context.Context, paths []string) ([]provision.FileState, error) {
	args := []string{t.root}
	for _, p := range paths {
		args = append(args, rel(p))
	}
	out, err := t.c.script(ctx, filesScript, nil, args...)
	if err != nil {
		return nil, t.c.opErr("list files under "+t.root, err)
	}
	var files []provision.FileState
	for rec := range bytes.SplitSeq(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		f := strings.SplitN(string(rec), " ", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("node %s: list files: unexpected output %q", t.c.name, rec)
		}
		mode, err := strconv.ParseUint(f[0], 8, 32)
		if err != nil {
			return nil, fmt.Errorf("node %s: list files: mode %q of %s", t.c.name, f[0], f[2])
		}
		files = append(files, provision.FileState{
			Path:   strings.TrimPrefix(path.Clean(f[2]), "./"),
			Mode:   fs.FileMode(mode).Perm(),
			SHA256: f[1],
		})
	}
	return files, nil
}

// exitMissing is the status the scripts give for a missing file.
const exitMissing = 3

func isStatus(err error, status int) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Status == status
}

// ReadPublic implements [provision.Transport].
func (t *Transport) ReadPublic(ctx context.Context, p string) ([]byte, bool, error) {
	out, err := t.c.script(ctx, `[ -e "$1" ] || exit 3; exec cat "$1"`, nil, t.abs(p))
	if isStatus(err, exitMissing) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, t.c.opErr("read "+t.abs(p), err)
	}
	return out, true, nil
}

// recipientScript prints the recipient of the identity file $1 without
// the secret leaving the node: the keygen command ($2...) -y where the node has it,
// else the "# public key:" line age-keygen and unibus write above the one
// key (exit 4: not exactly one key).
const recipientScript = `f=$1; shift
[ -e "$f" ] || exit 3
if command -v "$1" >/dev/null 2>&1; then "$@" -y "$f" 2>/dev/null || exit 4; exit 0; fi
[ "$(grep -c '^AGE-SECRET-KEY-1' "$f")" = 1 ] || exit 4
sed -n 's/^# public key: //p' "$f"`

// AgeRecipient implements [provision.Transport]: the recipient is worked
// out on the node; only it comes back.
func (t *Transport) AgeRecipient(ctx context.Context, p string) (string, bool, error) {
	out, err := t.c.script(ctx, recipientScript, nil, append([]string{t.abs(p)}, t.keygenArgv()...)...)
	switch {
	case isStatus(err, exitMissing):
		return "", false, nil
	case isStatus(err, 4):
		return "", false, fmt.Errorf("node %s: %s is not an age identity file with exactly one key (want one AGE-SECRET-KEY-1... line)", t.c.name, t.abs(p))
	case err != nil:
		return "", false, t.c.opErr("age recipient of "+t.abs(p), err)
	}
	r, err := parseRecipient(out)
	if err != nil {
		return "", false, fmt.Errorf("node %s: %s: %v", t.c.name, t.abs(p), err)
	}
	return r, true, nil
}

func parseRecipient(out []byte) (string, error) {
	lines := strings.Fields(string(out))
	if len(lines) != 1 {
		return "", fmt.Errorf("want one age recipient for the identity, got %d", len(lines))
	}
	if _, err := age.ParseX25519Recipient(lines[0]); err != nil {
		return "", fmt.Errorf("the identity's recipient %q is not an age X25519 recipient", lines[0])
	}
	return lines[0], nil
}
