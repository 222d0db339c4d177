package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Transport reaches one node's files. Paths are slash-separated and
// relative to the node's root. Local files are one implementation; SSH is
// another with the same contract, so plan never needs more of a node than
// this: hashes and modes of files, the contents of files that are not
// secret, and the recipient of the node's age identity (worked out on the
// node, so the identity never travels).
type Transport interface {
	// Files lists every regular file at or under each of paths (a file or
	// a folder), with its mode and SHA-256. Missing paths are skipped.
	Files(ctx context.Context, paths []string) ([]FileState, error)
	// ReadPublic reads a file that holds no secret (a unit, a
	// certificate); ok is false when it does not exist.
	ReadPublic(ctx context.Context, p string) (data []byte, ok bool, err error)
	// AgeRecipient is the recipient of the age identity file at p; ok is
	// false when there is none.
	AgeRecipient(ctx context.Context, p string) (recipient string, ok bool, err error)
}

// FileState is a file as a node has it: never its content.
type FileState struct {
	Path   string      `json:"path"`
	Mode   fs.FileMode `json:"mode"`
	SHA256 string      `json:"sha256"`
}

// LocalTransport reaches a node whose root is a folder of this machine.
type LocalTransport struct{ Root string }

func (t LocalTransport) abs(p string) string {
	return filepath.Join(t.Root, filepath.FromSlash(path.Clean("/"+p)))
}

// Files implements [Transport].
func (t LocalTransport) Files(ctx context.Context, paths []string) ([]FileState, error) {
	var out []FileState
	for _, p := range paths {
		err := filepath.WalkDir(t.abs(p), func(abs string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(t.Root, abs)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum, err := hashFile(abs)
			if err != nil {
				return err
			}
			out = append(out, FileState{Path: filepath.ToSlash(rel), Mode: fi.Mode().Perm(), SHA256: sum})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReadPublic implements [Transport].
func (t LocalTransport) ReadPublic(_ context.Context, p string) ([]byte, bool, error) {
	data, err := os.ReadFile(t.abs(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}

// AgeRecipient implements [Transport]: the identity is parsed in memory
// and only its public half is returned.
func (t LocalTransport) AgeRecipient(_ context.Context, p string) (string, bool, error) {
	data, err := os.ReadFile(t.abs(p))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's error is not repeated: it might quote the file.
		return "", false, fmt.Errorf("%s is not an age identity file (want one AGE-SECRET-KEY-1... line)", t.abs(p))
	}
	var out []string
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			out = append(out, x.Recipient().String())
		}
	}
	if len(out) != 1 {
		return "", false, fmt.Errorf("%s holds %d X25519 identities, want exactly one", t.abs(p), len(out))
	}
	return out[0], true, nil
}

// ageIdentityPath is where a node keeps its own age identity, relative to
// its root: <config dir>/age-identity. apply creates it (0600) when
// absent; the unit hands it to membershipd as the age-identity credential.
func ageIdentityPath(t Target) string { return path.Join(t.Scope.ConfigDir(), "age-identity") }

// AgeIdentityPath is [ageIdentityPath] for apply.
func AgeIdentityPath(t Target) string { return ageIdentityPath(t) }

// hasPrefixPath says whether p is dir or under it.
func hasPrefixPath(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
