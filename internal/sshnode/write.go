package sshnode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"filippo.io/age"
)

// writeScript replaces $1 with stdin at mode $2, making its folders with
// umask $3. Atomic as pki.WriteFileAtomic: a temp file beside $1, its
// content checked, synced, renamed over $1. stdin's first line is the
// content's SHA-256: a connection cut mid-upload ends stdin early, cat
// succeeds on what arrived, and only the check keeps it from being
// renamed into place. (The hash travels in stdin, not argv, where any
// user of the node could read it.) Temp files a killed write left are
// removed first.
const writeScript = `f=$1; mode=$2; dmask=$3
d=$(dirname "$f"); b=$(basename "$f")
(umask "$dmask" && mkdir -p "$d") || exit 1
rm -f "$d/.$b".tmp*
tmp=$(mktemp "$d/.$b.tmpXXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT
IFS= read -r want || { echo "no content arrived" >&2; exit 1; }
cat > "$tmp" || exit 1
got=$(sha256sum < "$tmp") || exit 1
if [ "${got%% *}" != "$want" ]; then echo "upload cut short: $(wc -c < "$tmp") bytes arrived, not the file sent; nothing was replaced" >&2; exit 1; fi
chmod "$mode" "$tmp" && sync "$tmp" && mv -f "$tmp" "$f" || exit 1
trap - EXIT
sync "$d" 2>/dev/null || sync`

// WriteFile implements [provision.Writer]: the content goes over stdin.
// Folders it makes are 0700 under the config dir and 0755 elsewhere, as
// [provision.LocalTransport.WriteFile] makes them.
func (t *Transport) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	dmask := "022"
	if privateDir(strings.TrimPrefix(path.Clean("/"+p), "/")) {
		dmask = "077"
	}
	sum := sha256.Sum256(data)
	stdin := io.MultiReader(strings.NewReader(hex.EncodeToString(sum[:])+"\n"), bytes.NewReader(data))
	_, err := t.c.script(ctx, writeScript, stdin, t.abs(p), fmt.Sprintf("%o", mode.Perm()), dmask)
	return t.c.opErr("write "+t.abs(p), err)
}

// privateDir is LocalTransport's rule for folders holding keys and sealed
// secrets: the config dir of either scope.
func privateDir(p string) bool {
	return strings.Contains(p, "/unibus/") || strings.HasPrefix(p, "etc/unibus") || strings.HasPrefix(p, ".config/unibus")
}

// Remove implements [provision.Writer].
func (t *Transport) Remove(ctx context.Context, p string) error {
	_, err := t.c.script(ctx, `rm -f "$1"`, nil, t.abs(p))
	return t.c.opErr("remove "+t.abs(p), err)
}

// keygenScript makes the identity $1 with the keygen command ($2...) on the node and
// prints its recipient. age-keygen -o refuses a file that exists (exit 5:
// another apply made it first). Exit 6: the node has no age-keygen.
const keygenScript = `f=$1; shift
command -v "$1" >/dev/null 2>&1 || exit 6
(umask 077 && mkdir -p "$(dirname "$f")") || exit 1
if ! "$@" -o "$f" >/dev/null 2>&1; then [ -e "$f" ] && exit 5; echo "$* -o $f failed" >&2; exit 1; fi
"$@" -y "$f"`

// installScript puts the identity in stdin (after its SHA-256 line) at $1,
// 0600, only if there is none: link(2) onto $1 fails when it exists, so
// two applies racing keep one identity, and the temp file is whole before
// it is linked.
const installScript = `f=$1
d=$(dirname "$f"); b=$(basename "$f")
(umask 077 && mkdir -p "$d") || exit 1
rm -f "$d/.$b".tmp*
tmp=$(umask 077 && mktemp "$d/.$b.tmpXXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT
IFS= read -r want || exit 1
cat > "$tmp" || exit 1
got=$(sha256sum < "$tmp") || exit 1
[ "${got%% *}" = "$want" ] || { echo "upload cut short; no identity was made" >&2; exit 1; }
sync "$tmp" || exit 1
ln "$tmp" "$f" 2>/dev/null || { [ -e "$f" ] && exit 5; exit 1; }
sync "$d" 2>/dev/null || sync`

// EnsureAgeIdentity implements [provision.Writer]. With age-keygen on the
// node ([Options.AgeKeygen]) the identity is made there and only its
// recipient comes back. A node without it gets one made in this process's
// memory and sent over the SSH channel's stdin; it is never written here,
// and never read back off the node.
func (t *Transport) EnsureAgeIdentity(ctx context.Context, p string) (string, bool, error) {
	if r, ok, err := t.AgeRecipient(ctx, p); err != nil || ok {
		return r, false, err
	}
	abs := t.abs(p)
	out, err := t.c.script(ctx, keygenScript, nil, append([]string{abs}, t.keygenArgv()...)...)
	switch {
	case err == nil:
		r, err := parseRecipient(out)
		if err != nil {
			return "", false, fmt.Errorf("node %s: %s: %v", t.c.name, abs, err)
		}
		return r, true, nil
	case isStatus(err, 5):
		r, _, err := t.AgeRecipient(ctx, p)
		return r, false, err
	case !isStatus(err, 6):
		return "", false, t.c.opErr("make the age identity "+abs, err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", false, err
	}
	content := fmt.Sprintf("# unibus node identity: opens what is sealed to this node; never copy it off\n# public key: %s\n%s\n", id.Recipient(), id)
	sum := sha256.Sum256([]byte(content))
	stdin := io.MultiReader(strings.NewReader(hex.EncodeToString(sum[:])+"\n"), strings.NewReader(content))
	_, err = t.c.script(ctx, installScript, stdin, abs)
	if isStatus(err, 5) {
		r, _, err := t.AgeRecipient(ctx, p)
		return r, false, err
	}
	if err != nil {
		return "", false, t.c.opErr("make the age identity "+abs, err)
	}
	return id.Recipient().String(), true, nil
}
