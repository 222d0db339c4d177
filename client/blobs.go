package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
)

// PutBlob uploads data to a room's blobs and returns its id, the hex SHA-256.
// Blobs are stored as given: seal them with the room key first if they are
// private.
func (c *Client) PutBlob(ctx context.Context, room string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	err := c.do(ctx, "PUT", "/v1/blobs/"+id+"?room="+url.QueryEscape(room), "application/octet-stream", data, nil)
	return id, err
}

// Blob downloads a blob and checks it against its id.
func (c *Client) Blob(ctx context.Context, room, id string) ([]byte, error) {
	var data []byte
	if err := c.do(ctx, "GET", "/v1/blobs/"+url.PathEscape(id)+"?room="+url.QueryEscape(room), "", nil, &data); err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
		return nil, fmt.Errorf("blob %s: content does not match its id", id)
	}
	return bytes.Clone(data), nil
}
