package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// File modes: keys are for their owner alone; certificates are public.
const (
	KeyMode  fs.FileMode = 0o600
	CertMode fs.FileMode = 0o644
)

// ErrKeyExists is returned, wrapped in a [*FileError], instead of replacing
// a private key that is already on disk: a replaced CA key orphans every
// certificate it signed.
var ErrKeyExists = errors.New("key exists; refusing to overwrite it")

// FileError is a problem with one file; its message starts with the path so
// the operator knows which file to look at.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func fileErr(path string, err error) error {
	if err == nil {
		return nil
	}
	return &FileError{Path: path, Err: unwrapPathError(err)}
}

// WriteFileAtomic replaces path with data so that a reader sees the old file
// or the new one, never a torn one, and never with looser permissions: the
// temporary file is created in the same folder (same file system, so rename
// is atomic), given its final mode, synced, then renamed over path.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fileErr(path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fileErr(path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fileErr(path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fileErr(path, err)
	}
	if err := tmp.Close(); err != nil {
		return fileErr(path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fileErr(path, err)
	}
	done = true
	// Sync the folder too, or the rename itself may not survive a crash.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// refuseExistingKey returns ErrKeyExists for a key file that exists, unless
// force is set.
func refuseExistingKey(path string, force bool) error {
	if force {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return &FileError{Path: path, Err: ErrKeyExists}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fileErr(path, err)
	}
	return nil
}

// ReadCertFile reads the first certificate of a PEM file.
func ReadCertFile(path string) (*x509.Certificate, error) {
	b, err := ReadBundleFile(path)
	if err != nil {
		return nil, err
	}
	return b[0], nil
}

// ReadBundleFile reads every certificate of a PEM file.
func ReadBundleFile(path string) (Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	b, err := ParseBundle(data)
	return b, fileErr(path, err)
}

// ErrNeedIdentity is returned for an age-encrypted key when no identity to
// decrypt it was given.
var ErrNeedIdentity = errors.New("key is age-encrypted and no age identity was given")

// ReadKeyFile reads a PEM private key. A key stored age-encrypted (see
// [EncryptKey]) is decrypted in memory with one of ids.
func ReadKeyFile(path string, ids ...age.Identity) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	if IsAgeEncrypted(data) {
		if len(ids) == 0 {
			return nil, &FileError{Path: path, Err: ErrNeedIdentity}
		}
		if data, err = DecryptKey(data, ids...); err != nil {
			return nil, fileErr(path, err)
		}
	}
	key, err := ParseKey(data)
	return key, fileErr(path, err)
}

// IsAgeEncrypted tells an age file (armored or binary) from a PEM key.
func IsAgeEncrypted(data []byte) bool {
	data = bytes.TrimSpace(data)
	return bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) ||
		bytes.HasPrefix(data, []byte("age-encryption.org/"))
}

// checkKeyPair is the "key does not match" check, with the files named.
func checkKeyPair(certPath string, cert *x509.Certificate, keyPath string, key crypto.Signer) error {
	if samePublicKey(cert, key) {
		return nil
	}
	return &FileError{Path: keyPath, Err: fmt.Errorf("key does not match certificate %s", certPath)}
}
