package membershipd

import (
	"context"
	"errors"
	"fmt"

	"github.com/unibus/unibus/internal/cli"
	"github.com/unibus/unibus/membershipd/store"
)

// Bootstrap makes the first admin of a fresh state dir: handle, Ed25519
// signing key (nkey "U...") and age recipient, with selfVouch, the admin's
// own vouch for that record (unibus keygen prints it): the first admin has
// nobody else to vouch for it, and clients trust such a record only if they
// pin its key. It is refused once any admin exists, so it cannot be used to
// take over a running control plane; later members are added through the
// signed API by an admin.
func Bootstrap(ctx context.Context, stateDir, handle, signPub, ageRecipient, selfVouch string) (store.Member, error) {
	m, err := memberRequest{Handle: handle, Role: string(store.RoleAdmin), SignPub: signPub, AgeRecipient: ageRecipient,
		VouchedBy: handle, VouchSig: selfVouch}.member()
	if err != nil {
		return store.Member{}, err
	}
	if code, _ := checkVouch(m, handle, signPub); code != "" {
		return store.Member{}, cli.WithHint(errors.New("--vouch: not the admin's own signature over this record"),
			"unibus keygen prints the bootstrap command with --vouch filled in; copy it whole")
	}
	if err := prepareStateDir(stateDir); err != nil {
		return store.Member{}, err
	}
	st, err := store.OpenSQLite(ctx, stateDir)
	if err != nil {
		return store.Member{}, err
	}
	defer st.Close()
	// A node of a running cluster keeps its members in the cluster's KV
	// and imports none from here: an admin made here would never be seen,
	// and must not be (see importLocalState).
	if cluster, err := st.ClusterNode(ctx); err != nil {
		return store.Member{}, err
	} else if cluster != "" {
		return store.Member{}, cli.WithHint(fmt.Errorf("refused: this state dir is a node of cluster %q, whose members live in the cluster's replicated store", cluster),
			"an admin of the cluster adds another admin with `unibus member add HANDLE --role admin`")
	}
	err = st.CreateFirstAdmin(ctx, m)
	if errors.Is(err, store.ErrExists) {
		return store.Member{}, cli.WithHint(errors.New("refused: this state dir already has an admin"),
			"bootstrap makes only the first admin; an admin adds members with `unibus member add`")
	}
	return m, err
}
