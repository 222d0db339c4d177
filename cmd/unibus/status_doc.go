package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unibus/unibus/internal/converge"
	"github.com/unibus/unibus/rollout"
)

// statusFormat is the version of the -json document: fields are added
// under it, never renamed or removed.
const statusFormat = "1.0"

// statusDoc is unibus status's answer, for the table and for -json.
type statusDoc struct {
	FormatVersion string       `json:"format_version"`
	Cluster       string       `json:"cluster"`
	CheckedAt     time.Time    `json:"checked_at"`
	Status        level        `json:"status"`
	ExitCode      int          `json:"exit_code"`
	Nodes         []nodeStatus `json:"nodes"`

	expect expect
}

type nodeStatus struct {
	Name      string    `json:"name"`
	Status    level     `json:"status"`
	Findings  []finding `json:"findings"`
	Reachable bool      `json:"reachable"`
	// Error is why the node's control plane did not answer.
	Error        string           `json:"error,omitempty"`
	Version      string           `json:"version,omitempty"`
	Health       string           `json:"health,omitempty"` // /healthz status: ok, starting, degraded
	Ready        bool             `json:"ready"`
	Uptime       int64            `json:"uptime_seconds,omitempty"`
	Service      *serviceStatus   `json:"service,omitempty"`
	Posture      *rollout.Posture `json:"posture,omitempty"`
	JetStream    *converge.Facts  `json:"jetstream,omitempty"`
	Certificates []certStatus     `json:"certificates"`
}

type serviceStatus struct {
	Manager        string `json:"manager,omitempty"`
	ManagerVersion string `json:"manager_version,omitempty"`
	ActiveState    string `json:"active_state,omitempty"`
	SubState       string `json:"sub_state,omitempty"`
	Result         string `json:"result,omitempty"`
	Restarts       int    `json:"restarts"`
	MainPID        int    `json:"main_pid,omitempty"`
	Error          string `json:"error,omitempty"`
}

type certStatus struct {
	Path          string    `json:"path"`
	Subject       string    `json:"subject"`
	NotAfter      time.Time `json:"not_after"`
	DaysLeft      int       `json:"days_left"`
	InRenewWindow bool      `json:"in_renew_window"`
}

func makeStatusDoc(cluster string, obs []nodeObs, e expect) *statusDoc {
	doc := &statusDoc{FormatVersion: statusFormat, Cluster: cluster, CheckedAt: e.Now.UTC().Truncate(time.Second), expect: e}
	for _, o := range obs {
		lvl, fs := classify(o, e)
		doc.Status = worse(doc.Status, lvl)
		ns := nodeStatus{Name: o.Name, Status: lvl, Findings: fs, Reachable: o.ProbeErr == "", Error: o.ProbeErr,
			Ready: o.Sample.Ready, JetStream: o.Sample.Cluster, Certificates: []certStatus{}}
		if fs == nil {
			ns.Findings = []finding{}
		}
		if h := o.Health; h != nil {
			ns.Version, ns.Health, ns.Uptime = h.Version, h.Status, h.UptimeSeconds
			p := h.Posture
			ns.Posture = &p
		}
		if o.Manager != "" || o.ServiceErr != "" {
			ns.Service = &serviceStatus{Manager: o.Manager, ManagerVersion: o.ManagerVersion, Error: o.ServiceErr}
			if s := o.Service; s != nil {
				ns.Service.ActiveState, ns.Service.SubState, ns.Service.Result = s.ActiveState, s.SubState, s.Result
				ns.Service.Restarts, ns.Service.MainPID = s.NRestarts, s.MainPID
			}
		}
		for _, c := range o.Certs {
			ns.Certificates = append(ns.Certificates, certStatus{Path: c.Path, Subject: c.Subject, NotAfter: c.NotAfter.UTC(),
				DaysLeft: daysLeft(c.NotAfter, e.Now), InRenewWindow: c.NotAfter.Sub(e.Now) < e.RenewBefore})
		}
		doc.Nodes = append(doc.Nodes, ns)
	}
	doc.ExitCode = int(doc.Status)
	return doc
}

func writeStatus(w io.Writer, doc *statusDoc, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(doc)
	}
	return doc.writeText(w)
}

// writeText prints a Nagios-style first line, the table, then each
// finding on a line of its own.
func (doc *statusDoc) writeText(w io.Writer) error {
	flagged := 0
	for _, n := range doc.Nodes {
		if n.Status != levelOK {
			flagged++
		}
	}
	fmt.Fprintf(w, "UNIBUS %s - cluster %s: %d of %d node(s) flagged\n\n", doc.Status, doc.Cluster, flagged, len(doc.Nodes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tREACHABLE\tVERSION\tSERVICE\tRESTARTS\tPOSTURE\tJETSTREAM\tCERTIFICATES (days left)")
	for _, n := range doc.Nodes {
		reach := "yes"
		if !n.Reachable {
			reach = "NO"
		}
		version, service, restarts, posture := "-", "?", "-", "-"
		if n.Version != "" {
			version = n.Version
		}
		if s := n.Service; s != nil {
			version += " (" + strings.TrimSpace(s.Manager+" "+versionOnly(s.ManagerVersion)) + ")"
			if s.ActiveState != "" {
				service = s.ActiveState + "/" + s.SubState
				restarts = strconv.Itoa(s.Restarts)
			}
		}
		if n.Posture != nil {
			posture = postureText(*n.Posture, doc.expect)
		}
		var certs []string
		for _, c := range n.Certificates {
			mark := ""
			if c.InRenewWindow {
				mark = "!"
			}
			certs = append(certs, fmt.Sprintf("%s %d%s", certName(c.Path), c.DaysLeft, mark))
		}
		if len(certs) == 0 {
			certs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Status, reach, version, service, restarts,
			posture, jetStreamText(n.JetStream), strings.Join(certs, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if flagged > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range doc.Nodes {
		for _, f := range n.Findings {
			fmt.Fprintf(w, "%s: %s: %s\n", n.Name, f.Level, f.Text)
		}
	}
	return nil
}

// versionOnly drops a manager's own name from its version ("unibus-exec
// 1" is shown as exec 1).
func versionOnly(v string) string {
	if i := strings.LastIndexByte(v, ' '); i >= 0 {
		return v[i+1:]
	}
	return v
}
