package membershipd

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// dataPlane is the NATS side of the daemon: the embedded server, or an
// external NATS reached with --nats-url. Both give the daemon a connection
// and answer the same readiness and health questions.
type dataPlane interface {
	conn() *nats.Conn
	// ready returns nil once clients can connect and JetStream answers.
	ready(ctx context.Context) error
	health(ctx context.Context) dataPlaneHealth
	// shutdown stops the data plane gracefully, within ctx.
	shutdown(ctx context.Context)
}

// dataPlaneHealth is what /healthz shows of NATS: counts and modes only, never
// a stream, subject or account name.
type dataPlaneHealth struct {
	Mode      string         `json:"mode"` // "embedded" or "external"
	Connected bool           `json:"connected"`
	Clients   *int           `json:"clients,omitempty"` // embedded only
	JetStream jetStreamCount `json:"jetstream"`
	Cluster   *clusterHealth `json:"cluster,omitempty"`
}

type jetStreamCount struct {
	Enabled   bool   `json:"enabled"`
	Streams   int    `json:"streams"`
	Consumers int    `json:"consumers"`
	Store     uint64 `json:"store_bytes"`
	Error     string `json:"error,omitempty"` // a reason code, see readiness.go
}

// jetStreamReady asks JetStream itself, over the daemon's connection, for the
// account's info: the server can accept connections before its JetStream
// subsystem answers, so a connected client is not proof of readiness.
func jetStreamReady(ctx context.Context, js jetstream.JetStream) (*jetstream.AccountInfo, error) {
	info, err := js.AccountInfo(ctx)
	switch {
	case err == nil:
		return info, nil
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return nil, &notReadyError{code: reasonJetStreamDisabled, msg: "jetstream is not enabled"}
	default:
		return nil, &notReadyError{code: reasonJetStreamStarting, msg: "jetstream not answering", cause: err}
	}
}

func jetStreamHealth(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) jetStreamCount {
	if !nc.IsConnected() {
		return jetStreamCount{Error: reasonNATSStarting}
	}
	info, err := jetStreamReady(ctx, js)
	if err != nil {
		code, _ := publicReason(err)
		return jetStreamCount{Error: code}
	}
	return jetStreamCount{Enabled: true, Streams: info.Streams, Consumers: info.Consumers, Store: info.Store}
}
