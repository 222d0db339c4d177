package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/unibus/unibus/internal/vouch"
)

// maxVouchChain bounds the admins walked from a record to a pinned key, so
// a lying server cannot make the client loop or fetch without end.
const maxVouchChain = 8

// UntrustedError is a refusal to seal a room key to handle: its record, as
// the server gave it, does not trace to an admin the caller trusts.
type UntrustedError struct {
	Handle string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("member %s: record is not vouched for by an admin you trust (%s; pin one with unibus trust add)", e.Handle, e.Reason)
}

// TrustedRecipient returns handle's age recipient once its record verifies:
// its vouch must verify against a pinned admin's key (or the caller's own),
// or against an admin whose own record verifies so, up to maxVouchChain
// admins deep. The caller's own recipient comes from its identity, never
// from the server.
func (c *Client) TrustedRecipient(ctx context.Context, handle string) (string, error) {
	if handle == c.id.Handle {
		return c.id.Recipient(), nil
	}
	m, err := c.Member(ctx, handle)
	if err != nil {
		return "", fmt.Errorf("member %s: %w", handle, err)
	}
	if m.Handle != handle {
		return "", &UntrustedError{Handle: handle, Reason: fmt.Sprintf("the server answered with the record of %q", m.Handle)}
	}
	reason, err := c.traceVouch(ctx, m)
	if err != nil {
		return "", fmt.Errorf("member %s: %w", handle, err)
	}
	if reason != "" {
		return "", &UntrustedError{Handle: handle, Reason: reason}
	}
	return m.AgeRecipient, nil
}

// traceVouch walks m's vouch up to a trusted key. It returns why the chain
// does not hold, or "" when it does; err is for a failed lookup.
func (c *Client) traceVouch(ctx context.Context, m Member) (reason string, err error) {
	seen := map[string]bool{}
	for range maxVouchChain {
		if m.VouchSig == "" || m.VouchedBy == "" {
			return fmt.Sprintf("%s's record carries no vouch", m.Handle), nil
		}
		if key := c.id.pinned(m.VouchedBy); key != "" {
			if vouch.Verify(key, vouchRecord(m), m.VouchSig) != nil {
				return fmt.Sprintf("the vouch for %s does not verify with the key you pinned for %s", m.Handle, m.VouchedBy), nil
			}
			return "", nil
		}
		if m.VouchedBy == m.Handle {
			return fmt.Sprintf("%s vouches for itself and you do not pin its key", m.Handle), nil
		}
		if seen[m.VouchedBy] {
			return fmt.Sprintf("the vouches loop at %s", m.VouchedBy), nil
		}
		seen[m.Handle] = true
		voucher, err := c.Member(ctx, m.VouchedBy)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == 404 {
			return fmt.Sprintf("%s, who vouched for %s, is not a member", m.VouchedBy, m.Handle), nil
		}
		if err != nil {
			return "", fmt.Errorf("look up %s, who vouched for %s: %w", m.VouchedBy, m.Handle, err)
		}
		if voucher.Handle != m.VouchedBy {
			return fmt.Sprintf("the server answered with the record of %q for %s", voucher.Handle, m.VouchedBy), nil
		}
		if voucher.Role != "admin" {
			return fmt.Sprintf("%s, who vouched for %s, is not an admin", voucher.Handle, m.Handle), nil
		}
		if vouch.Verify(voucher.SignPub, vouchRecord(m), m.VouchSig) != nil {
			return fmt.Sprintf("the vouch for %s does not verify with %s's key", m.Handle, voucher.Handle), nil
		}
		m = voucher
	}
	return fmt.Sprintf("no admin you trust within %d vouches", maxVouchChain), nil
}

// trustedRecipients checks every handle first and returns their
// recipients, so a call that refuses one seals nothing to anyone.
func (c *Client) trustedRecipients(ctx context.Context, handles []string) (map[string]string, error) {
	out := make(map[string]string, len(handles))
	for _, h := range handles {
		r, err := c.TrustedRecipient(ctx, h)
		if err != nil {
			return nil, err
		}
		out[h] = r
	}
	return out, nil
}
