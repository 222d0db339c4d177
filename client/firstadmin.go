package client

import "encoding/json"

// FirstAdminRecord is the identity's public record as an admin, vouched by
// itself: the file membershipd --first-admin reads. It holds no secret.
func (id *Identity) FirstAdminRecord() ([]byte, error) {
	sig, err := id.SelfVouch()
	if err != nil {
		return nil, err
	}
	m := map[string]string{
		"handle": id.Handle, "role": "admin", "sign_pub": id.SignPub(), "age_recipient": id.Recipient(),
		"vouched_by": id.Handle, "vouch_sig": sig,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}
