package membershipd

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// external is a NATS server the daemon does not run (--nats-url). The daemon
// starts even when it is not up yet, and reports not-ready until it is.
type external struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connectExternal(url string, log *slog.Logger) (*external, error) {
	nc, err := nats.Connect(url,
		nats.Name("membershipd"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ConnectHandler(func(*nats.Conn) { log.Info("connected to external nats") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from external nats", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected to external nats") }),
	)
	if err != nil {
		return nil, fmt.Errorf("--nats-url: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &external{nc: nc, js: js}, nil
}

func (x *external) conn() *nats.Conn { return x.nc }

func (x *external) ready(ctx context.Context) error {
	if !x.nc.IsConnected() {
		return fmt.Errorf("not connected to external nats (%s)", x.nc.Status())
	}
	_, err := jetStreamReady(ctx, x.js)
	return err
}

func (x *external) health(ctx context.Context) dataPlaneHealth {
	return dataPlaneHealth{Mode: "external", Connected: x.nc.IsConnected(), JetStream: jetStreamHealth(ctx, x.nc, x.js)}
}

func (x *external) shutdown(ctx context.Context) {
	if err := x.nc.FlushWithContext(ctx); err == nil {
		x.nc.Close()
		return
	}
	x.nc.Close()
}
