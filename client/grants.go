package client

import (
	"context"
	"net/url"
	"time"
)

// BusGrant is a short-lived NATS credential in the daemon's own account,
// for a tool that must write the control-plane buckets (migrate-to-kv). It
// is valid on the node that issued it only.
type BusGrant struct {
	NKey        string    `json:"nkey"`
	InboxPrefix string    `json:"inbox_prefix"`
	Expires     time.Time `json:"expires"`
}

// CreateBusGrant asks for a grant for nkey, a public key the caller made
// for this run only (admins only). ttl 0 takes the server's default.
func (c *Client) CreateBusGrant(ctx context.Context, nkey string, ttl time.Duration) (BusGrant, error) {
	var out BusGrant
	err := c.doJSON(ctx, "POST", "/v1/admin/bus-grants", map[string]any{"nkey": nkey, "ttl_seconds": int64(ttl / time.Second)}, &out)
	return out, err
}

// DeleteBusGrant revokes a grant before it expires; its connections close.
func (c *Client) DeleteBusGrant(ctx context.Context, nkey string) error {
	return c.doJSON(ctx, "DELETE", "/v1/admin/bus-grants/"+url.PathEscape(nkey), nil, nil)
}
