package pki

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// CA keys can be kept encrypted to the operators' age recipients. The file
// keeps its name (route-ca.key) and holds an armored age file instead of a
// PEM key; readers tell the two apart by content, and the PEM key exists
// only in memory.

// EncryptKey encrypts a PEM key to recipients as an armored age file.
func EncryptKey(keyPEM []byte, recipients ...age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	if _, err := w.Write(keyPEM); err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return buf.Bytes(), nil
}

// DecryptKey opens an age-encrypted key (armored or binary) in memory.
func DecryptKey(data []byte, ids ...age.Identity) ([]byte, error) {
	var src io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN AGE")) {
		src = armor.NewReader(bytes.NewReader(bytes.TrimSpace(data)))
	}
	r, err := age.Decrypt(src, ids...)
	if nm := new(age.NoIdentityMatchError); errors.As(err, &nm) {
		return nil, wrongIdentityError{err}
	}
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return out, nil
}

// wrongIdentityError says in plain words that the identities given are not
// among the recipients; errors.As still finds age's NoIdentityMatchError.
type wrongIdentityError struct{ err error }

func (e wrongIdentityError) Error() string {
	return "none of the age identities given can decrypt it"
}
func (e wrongIdentityError) Unwrap() error { return e.err }

// ParseRecipientArgs reads age recipients given one per string (as on a
// command line) and from recipients files (one per line, # comments).
func ParseRecipientArgs(args, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, a := range args {
		rs, err := age.ParseRecipients(strings.NewReader(a))
		if err != nil {
			return nil, fmt.Errorf("age recipient %q: %w", a, err)
		}
		out = append(out, rs...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fileErr(f, err)
		}
		rs, err := age.ParseRecipients(bytes.NewReader(data))
		if err != nil {
			return nil, fileErr(f, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// ReadIdentityFiles reads age identity files (AGE-SECRET-KEY-1..., one per
// line).
func ReadIdentityFiles(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fileErr(f, err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fileErr(f, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}
