package membershipd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMonitorOpensOnlyWhenAskedAndOnlyOnLoopback(t *testing.T) {
	t.Run("UNIBUS_NATS_MONITOR=1", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.NATSMonitorEnv = "1"
		d := startDaemon(t, cfg)
		addr := d.MonitorAddr()
		if addr == "" {
			t.Fatal("monitor requested but not listening")
		}
		resp, err := http.Get("http://" + addr + "/varz")
		if err != nil {
			t.Fatalf("GET /varz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /varz: status %d", resp.StatusCode)
		}
		ips := listeningIPs(t, portOf(t, addr))
		if len(ips) != 1 || !ips[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("monitor socket listens on %v; want exactly 127.0.0.1", ips)
		}
		var h health
		getJSON(t, endpoint(d, "/healthz"), &h)
		if h.Posture.Monitor != "loopback" {
			t.Errorf("healthz posture.monitor = %q; want loopback", h.Posture.Monitor)
		}
	})
	t.Run("no env", func(t *testing.T) {
		// Take a free port and hand it to the daemon as --monitor-port: it
		// must stay closed.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cfg := testConfig(t)
		cfg.MonitorPort = port
		d := startDaemon(t, cfg)
		if a := d.MonitorAddr(); a != "" {
			t.Fatalf("monitor listening on %s without being asked", a)
		}
		if ips := listeningIPs(t, port); len(ips) != 0 {
			t.Fatalf("something listens on the monitor port %d: %v", port, ips)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Fatalf("monitor port %d accepts connections", port)
		}
		var h health
		getJSON(t, endpoint(d, "/healthz"), &h)
		if h.Posture.Monitor != "off" {
			t.Errorf("healthz posture.monitor = %q; want off", h.Posture.Monitor)
		}
	})
}

func TestJetStreamPublishFetch(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	nc, err := nats.Connect(d.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "orders.new", fmt.Appendf(nil, "order-%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		m.Ack()
	}
	if len(got) != 10 || got[0] != "order-0" || got[9] != "order-9" {
		t.Fatalf("fetched %q; want order-0..order-9 in order", got)
	}
}

func TestHealthz(t *testing.T) {
	cfg := testConfig(t)
	cfg.JSSync = JSSync{Interval: 2 * time.Minute}
	d := startDaemon(t, cfg)
	nc, err := nats.Connect(d.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "SECRET_STREAM_NAME", Subjects: []string{"secret.subject"}}); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(endpoint(d, "/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	raw := new(strings.Builder)
	var h health
	if err := jsonDecodeTee(resp, raw, &h); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := posture{BusAuth: "off", Monitor: "off", Store: "sqlite", JSSync: "2m0s"}
	if h.Status != "ok" || h.Node != "test-node" || h.Version != Version || h.Posture != want {
		t.Errorf("healthz = %+v; want status ok, node test-node, posture %+v", h, want)
	}
	if h.NATS == nil || h.NATS.Mode != "embedded" || !h.NATS.JetStream.Enabled || h.NATS.JetStream.Streams != 1 {
		t.Errorf("healthz nats = %+v; want embedded, jetstream enabled with 1 stream", h.NATS)
	}
	// Public endpoint: counts only, never names.
	for _, secret := range []string{"SECRET_STREAM_NAME", "secret.subject"} {
		if strings.Contains(raw.String(), secret) {
			t.Errorf("healthz leaks %q: %s", secret, raw)
		}
	}
}

// TestReadyzTransition runs the daemon against an external NATS that is not
// there yet: /readyz must say 503 with a reason, then 200 once NATS with
// JetStream comes up on that address.
func TestReadyzTransition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cfg := testConfig(t)
	cfg.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	d := startDaemon(t, cfg)

	var e apiError
	if code := getJSON(t, endpoint(d, "/readyz"), &e); code != http.StatusServiceUnavailable || e.Code != "not_ready" || e.Error == "" {
		t.Fatalf("readyz before NATS: %d %+v; want 503 not_ready with a reason", code, e)
	}
	var h health
	getJSON(t, endpoint(d, "/healthz"), &h)
	if h.Status != "starting" || h.Reason == "" {
		t.Errorf("healthz before NATS: status %q reason %q", h.Status, h.Reason)
	}

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: natsPort, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	waitFor(t, "/readyz 200", 15*time.Second, func() bool {
		return getJSON(t, endpoint(d, "/readyz"), nil) == http.StatusOK
	})
	getJSON(t, endpoint(d, "/healthz"), &h)
	if h.Status != "ok" || h.NATS.Mode != "external" || !h.NATS.JetStream.Enabled {
		t.Errorf("healthz after NATS: %+v", h)
	}
}

func TestRestartKeepsState(t *testing.T) {
	cfg := testConfig(t)
	d, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id1, err := d.db.InstanceID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(d.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keep", []byte("survives")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := d.Shutdown(); err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, cfg)
	id2, err := d2.db.InstanceID(ctx)
	if err != nil || id2 != id1 {
		t.Fatalf("instance id after restart = %q (%v); want %q", id2, err, id1)
	}
	if v, _ := d2.db.SchemaVersion(ctx); v == 0 {
		t.Fatal("schema version 0 after restart")
	}
	nc2, err := nats.Connect(d2.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	s, err := js2.Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil || string(m.Data) != "survives" {
		t.Fatalf("message 1 after restart = %v, %v; want \"survives\"", m, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "jetstream")); err != nil {
		t.Fatalf("jetstream store not under the state dir: %v", err)
	}
}
