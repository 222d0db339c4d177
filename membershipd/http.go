package membershipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.handleHealthz)
	mux.HandleFunc("GET /readyz", d.handleReadyz)
	d.apiRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return mux
}

// apiError is the one error shape of the HTTP API.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

// health is the /healthz document: posture and counts, public by design, so
// it names no stream, subject, room or member.
type health struct {
	Status        string           `json:"status"` // "ok" or "starting" or "degraded"
	Version       string           `json:"version"`
	Node          string           `json:"node"`
	UptimeSeconds int64            `json:"uptime_seconds"`
	Posture       posture          `json:"posture"`
	NATS          *dataPlaneHealth `json:"nats,omitempty"`
	Reason        string           `json:"reason,omitempty"`
}

// posture is the security-relevant configuration, as facts an operator or a
// monitoring check can compare against what they expect.
type posture struct {
	BusAuth    string `json:"bus_auth"`
	ACL        bool   `json:"acl"` // subject ACLs in force on the bus
	ClientTLS  bool   `json:"client_tls"`
	HTTPTLS    bool   `json:"http_tls"`         // the control plane serves HTTPS
	ClientCert bool   `json:"client_cert_auth"` // clients must present a client-CA certificate
	RouteTLS   bool   `json:"route_tls"`
	Monitor    string `json:"monitor"` // "off" or "loopback"
	Store      string `json:"store"`   // "sqlite" single-node, "kv" clustered
	KVReplicas int    `json:"kv_replicas"`
	JSSync     string `json:"js_sync"`
}

func (d *Daemon) posture() posture {
	monitor := "off"
	if d.MonitorAddr() != "" {
		monitor = "loopback"
	}
	storeKind, replicas := "sqlite", 0
	if d.cluster != nil {
		storeKind, replicas = "kv", d.cfg.Cluster.KVReplicas
		d.cs.mu.Lock()
		kv := d.cs.kv
		d.cs.mu.Unlock()
		if kv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if n, err := kv.Replicas(ctx); err == nil {
				replicas = n
			}
			cancel()
		}
	}
	return posture{
		BusAuth:    string(d.cfg.BusAuth),
		ACL:        d.cfg.BusAuth == BusAuthEnforce && d.NATSURL() != "",
		RouteTLS:   d.cluster != nil && d.cluster.tls != nil,
		ClientTLS:  d.clientTLS != nil,
		HTTPTLS:    d.httpTLS != nil,
		ClientCert: d.clientTLS != nil && d.clientTLS.ClientCAs != nil,
		Monitor:    monitor,
		Store:      storeKind,
		KVReplicas: replicas,
		JSSync:     d.cfg.JSSync.String(),
	}
}

func (d *Daemon) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := health{
		Status:        "ok",
		Version:       Version,
		Node:          d.cfg.NodeName,
		UptimeSeconds: int64(time.Since(d.started).Seconds()),
		Posture:       d.posture(),
	}
	if err := d.ready(ctx); err != nil {
		h.Status, h.Reason = "starting", err.Error()
	}
	if dp := d.dataPlane(); dp != nil {
		nh := dp.health(ctx)
		h.NATS = &nh
	}
	writeJSON(w, http.StatusOK, h)
}

// handleReadyz answers 200 only when the data plane serves and JetStream
// answers; rollouts and load balancers gate on it.
func (d *Daemon) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := d.ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (d *Daemon) ready(ctx context.Context) error {
	dp := d.dataPlane()
	if dp == nil {
		return errNATSStarting
	}
	if err := dp.ready(ctx); err != nil {
		return err
	}
	if !d.controlReady() {
		if err := d.cs.err(); err != nil {
			return fmt.Errorf("control-plane store starting: %w", err)
		}
		return errors.New("control-plane store starting")
	}
	return nil
}

var errNATSStarting = errors.New("nats is starting")
