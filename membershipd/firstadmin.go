package membershipd

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/unibus/unibus/membershipd/store"
)

// readFirstAdmin reads --first-admin: the public record of the admin a new
// control plane starts with (handle, signing key, age recipient and the
// admin's own vouch for them), as JSON in the shape of POST /v1/members.
// It holds no secret. unibus apply renders it from the spec, so an
// operator is an admin of a cluster it brings up with no extra command.
func readFirstAdmin(file string) (*store.Member, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--first-admin %s: %w", file, unwrapPath(err))
	}
	var req memberRequest
	if err := decodeJSON(data, &req); err != nil {
		return nil, fmt.Errorf("--first-admin %s: %w", file, err)
	}
	if req.Role == "" {
		req.Role = string(store.RoleAdmin)
	}
	if req.Role != string(store.RoleAdmin) {
		return nil, fmt.Errorf("--first-admin %s: role %q: the first admin's role is admin", file, req.Role)
	}
	m, err := req.member()
	if err != nil {
		return nil, fmt.Errorf("--first-admin %s: %w", file, err)
	}
	if code, msg := checkVouch(m, m.Handle, m.SignPub); code != "" {
		return nil, fmt.Errorf("--first-admin %s: %s: the record must carry the admin's own vouch", file, msg)
	}
	return &m, nil
}

// ensureFirstAdmin creates the --first-admin record if the control plane
// has no admin yet, atomically (CreateFirstAdmin), on whichever node gets
// there first. Once any admin exists it does nothing: it never adds an
// admin to a live control plane.
func (d *Daemon) ensureFirstAdmin(ctx context.Context, st store.Store) error {
	if d.firstAdmin == nil {
		return nil
	}
	has, err := st.HasAdmin(ctx)
	if err != nil || has {
		return err
	}
	err = st.CreateFirstAdmin(ctx, *d.firstAdmin)
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	if err == nil {
		d.log.Info("first admin created from --first-admin", "handle", d.firstAdmin.Handle)
	}
	return err
}
