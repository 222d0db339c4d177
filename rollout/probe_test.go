package rollout

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveRecording serves a recorded /readyz and /healthz on loopback.
func serveRecording(t *testing.T, readyz string, readyStatus int, healthz string) Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(readyStatus)
		w.Write(read(t, readyz))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write(read(t, healthz)) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return Node{Name: "n1", BaseURL: "http://" + ln.Addr().String()}
}

// Probe gives unibus status the gate's own judgement and the posture.
func TestProbeRecorded(t *testing.T) {
	n := serveRecording(t, "converged_readyz_200.json", 200, "converged_healthz_200.json")
	s, h, err := Probe(context.Background(), n, time.Second, 3)
	if err != nil || !s.ok() || h == nil {
		t.Fatalf("converged: %+v %+v %v", s, h, err)
	}
	if h.Version != "dev" || h.Posture.BusAuth != "enforce" || !h.Posture.ACL || !h.Posture.RouteTLS || h.Posture.ClientTLS {
		t.Errorf("posture not decoded: %+v", h)
	}

	n = serveRecording(t, "one_server_down_readyz_503.json", 503, "one_server_down_healthz_200.json")
	s, h, err = Probe(context.Background(), n, time.Second, 3)
	if err != nil || s.ok() || h == nil || s.Cluster == nil || s.Cluster.Converged {
		t.Fatalf("one server down: %+v %+v %v", s, h, err)
	}
	if !strings.Contains(s.Problem, "7 streams with 1/2 followers current") {
		t.Errorf("problem %q", s.Problem)
	}
}

func TestProbeNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, h, err := Probe(context.Background(), Node{Name: "n3", BaseURL: "http://" + addr}, time.Second, 3)
	if err == nil || h != nil || !strings.HasPrefix(s.Problem, "not answering: ") {
		t.Fatalf("closed port: %+v %+v %v", s, h, err)
	}
}
