package membershipd

import (
	"strings"
	"testing"

	"github.com/unibus/unibus/internal/ids"
	"github.com/unibus/unibus/internal/vouch"
)

// The request-body parsers see untrusted bytes after authentication; they
// must never panic, and what they accept must be valid.

func FuzzParseMemberRequest(f *testing.F) {
	f.Add([]byte(`{"handle":"bob","role":"member","sign_pub":"UAUGMLATGRKES25IPFLES65CADQYND7KEKBVCZFE5NWNXX24KQQQ2NYC","age_recipient":"age1k8dlhdnuzrc825tgfdtl7dzjuhdxzedhdc0jfa5z28sjzkzegsuqr8uhzu"}`))
	f.Add([]byte(`{"handle":"bob","role":"member","sign_pub":"UAUGMLATGRKES25IPFLES65CADQYND7KEKBVCZFE5NWNXX24KQQQ2NYC","age_recipient":"age1k8dlhdnuzrc825tgfdtl7dzjuhdxzedhdc0jfa5z28sjzkzegsuqr8uhzu","vouched_by":"alice","vouch_sig":"` + strings.Repeat("A", 86) + `"}`))
	f.Add([]byte(`{"handle":"../x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseMemberRequest(body)
		if err != nil {
			return
		}
		if m.Handle == "" || m.SignPub == "" || m.AgeRecipient == "" || (m.Role != "admin" && m.Role != "member") {
			t.Fatalf("accepted an incomplete member %+v", m)
		}
		if (m.VouchSig != "" && !vouch.WellFormed(m.VouchSig)) || (m.VouchedBy != "" && ids.ValidHandle(m.VouchedBy) != nil) {
			t.Fatalf("accepted a malformed vouch %+v", m)
		}
	})
}

func FuzzParseRoomRequest(f *testing.F) {
	f.Add([]byte(`{"name":"ops"}`))
	f.Add([]byte(`{"name":"\u0000"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := parseRoomRequest(body)
		if err != nil {
			return
		}
		if name == "" || len(name) > 100 {
			t.Fatalf("accepted name %q", name)
		}
	})
}

func FuzzParseSealedKeyRequest(f *testing.F) {
	f.Add([]byte(`{"epoch":1,"sealed":"YWdlLWVuY3J5cHRpb24ub3JnL3YxCng="}`))
	f.Add([]byte(`{"epoch":-1,"sealed":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		k, err := parseSealedKeyRequest(body)
		if err != nil {
			return
		}
		if k.Epoch < 1 || len(k.Sealed) > 16<<10 {
			t.Fatalf("accepted %+v", k)
		}
	})
}

func FuzzParseRoomMemberRequest(f *testing.F) {
	f.Add([]byte(`{"handle":"bob"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		handle, err := parseRoomMemberRequest(body)
		if err == nil && ids.ValidHandle(handle) != nil {
			t.Fatalf("accepted invalid handle %q", handle)
		}
	})
}
