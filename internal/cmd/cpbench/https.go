package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/benchutil"
	"github.com/unibus/unibus/pki"
)

// tlsTarget is one membershipd of the HTTPS comparison: its process, base
// URL, the path of the sealed key it serves, and its rounds.
type tlsTarget struct {
	name string
	proc *process
	url  string
	path string
	s    series
}

// runHTTPS measures signed requests/s over HTTPS against plain HTTP: two
// membershipd processes of the same binary side by side, one with a node
// certificate issued by a fresh client CA (as a rendered node has), one
// without, both loaded by wrk over kept-alive connections (-c conns, so
// conns handshakes a run, not one a request). The rounds interleave and
// alternate which server goes first; medians are reported, with the median
// of each round's HTTPS/HTTP ratio.
func runHTTPS(bin string, rounds int, duration time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "cpbench-https-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	id, _ := client.GenerateIdentity("alice")
	script := filepath.Join(dir, "replay.lua")
	if err := os.WriteFile(script, []byte(luaScript), 0o644); err != nil {
		return err
	}
	ca, err := issueBenchCert(filepath.Join(dir, "pki"))
	if err != nil {
		return err
	}
	n := runtime.NumCPU()
	layouts := []*layout{{name: "shared", procs: n, wrkThreads: n}}
	if n >= 2 {
		layouts = append(layouts, &layout{name: "split", serverCPUs: "0", wrkCPUs: "1", procs: 1, wrkThreads: 1})
	}
	targets := map[*layout][2]*tlsTarget{}
	for _, l := range layouts {
		plain, err := l.startTLSTarget(bin, dir, id, "", "http")
		if plain != nil {
			defer plain.proc.stop()
		}
		if err != nil {
			return fmt.Errorf("%s http: %w", l.name, err)
		}
		secure, err := l.startTLSTarget(bin, dir, id, ca, "https")
		if secure != nil {
			defer secure.proc.stop()
		}
		if err != nil {
			return fmt.Errorf("%s https: %w", l.name, err)
		}
		targets[l] = [2]*tlsTarget{plain, secure}
	}
	ratios := map[*layout][]float64{}
	for r := 1; r <= rounds; r++ {
		for _, l := range layouts {
			order := targets[l]
			if r%2 == 0 {
				order[0], order[1] = order[1], order[0]
			}
			for _, t := range order {
				// Fresh signatures each run: every nonce is used once.
				auth := filepath.Join(dir, "auth-"+t.name+".txt")
				if err := writeLines(auth, signMany(id, t.path, int(duration.Seconds()*40000))); err != nil {
					return err
				}
				res, err := l.wrk(script, auth, t.url+t.path, duration, conns, t.proc.cpu)
				if err != nil {
					return fmt.Errorf("round %d, %s %s: %w", r, l.name, t.name, err)
				}
				if res.non2xx > 0 {
					return fmt.Errorf("round %d, %s %s: %d requests refused", r, l.name, t.name, res.non2xx)
				}
				t.s.add(res)
			}
			p, s := targets[l][0], targets[l][1]
			i := len(p.s.rate) - 1
			ratios[l] = append(ratios[l], s.s.rate[i]/p.s.rate[i])
			fmt.Fprintf(os.Stderr, "round %d %-6s: http %6.0f req/s, https %6.0f req/s: %.2fx\n", r, l.name, p.s.rate[i], s.s.rate[i], s.s.rate[i]/p.s.rate[i])
		}
	}
	med := benchutil.Median
	fmt.Printf("\nsealed-key fetch (signed GET) over HTTPS (TLS 1.3, HTTP/1.1 keep-alive) and plain HTTP,\nmedians of %d interleaved rounds of %s, wrk -c%d\n", rounds, duration, conns)
	for _, l := range layouts {
		p, s := targets[l][0], targets[l][1]
		where := fmt.Sprintf("servers and wrk -t%d on all %d cores", l.wrkThreads, l.procs)
		if l.serverCPUs != "" {
			where = fmt.Sprintf("servers on core %s (GOMAXPROCS=%d), wrk -t%d on core %s", l.serverCPUs, l.procs, l.wrkThreads, l.wrkCPUs)
		}
		fmt.Printf("\n%s: %s\n", l.name, where)
		fmt.Printf("  %-28s %11s %11s\n", "", "http", "https")
		fmt.Printf("  %-28s %11.0f %11.0f\n", "signed requests/s", med(p.s.rate), med(s.s.rate))
		fmt.Printf("  %-28s %9.2fms %9.2fms\n", "latency p50", med(p.s.p50)*1e3, med(s.s.p50)*1e3)
		fmt.Printf("  %-28s %9.2fms %9.2fms\n", "latency p99", med(p.s.p99)*1e3, med(s.s.p99)*1e3)
		fmt.Printf("  %-28s %9.0fµs %9.0fµs\n", "server CPU a request", med(p.s.cpuPerReq)*1e6, med(s.s.cpuPerReq)*1e6)
		fmt.Printf("  %-28s %22.2fx  (target >= 0.8x; median of the rounds' ratios)\n", "https / http", med(ratios[l]))
	}
	return nil
}

// issueBenchCert makes a client CA and node n1's server certificate for
// 127.0.0.1 under dir, as `unibus pki` does, and returns the CA bundle.
func issueBenchCert(dir string) (string, error) {
	d := pki.Dir(dir)
	cas, err := d.InitCAs(pki.InitOptions{Cluster: "bench"})
	if err != nil {
		return "", err
	}
	if _, err := d.IssueNode(cas, pki.Node{Name: "n1", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, pki.IssueOptions{}); err != nil {
		return "", err
	}
	return filepath.Join(dir, "client-ca.crt"), nil
}

// startTLSTarget runs a bootstrapped membershipd of the layout, with node
// n1's certificate when ca is set, and makes a room with a sealed key.
func (l *layout) startTLSTarget(bin, dir string, id *client.Identity, ca, name string) (*tlsTarget, error) {
	state := filepath.Join(dir, l.name+"-"+name)
	selfVouch, err := id.SelfVouch()
	if err != nil {
		return nil, err
	}
	if out, err := l.command(bin, "bootstrap", "--state-dir", state, "--handle", id.Handle,
		"--sign-pub", id.SignPub(), "--age-recipient", id.Recipient(), "--vouch", selfVouch).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bootstrap: %v: %s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", benchutil.FreePort())
	args := []string{"--state-dir", state, "--http-addr", addr, "--nats-addr", "127.0.0.1:0", "--log-format", "json"}
	t := &tlsTarget{name: name, url: "http://" + addr}
	hc := &http.Client{Timeout: time.Second}
	var opts []client.Option
	if ca != "" {
		node := filepath.Join(filepath.Dir(ca), "nodes", "n1")
		args = append(args, "--tls-cert", filepath.Join(node, "client.crt"), "--tls-key", filepath.Join(node, "client.key"), "--tls-ca", ca)
		t.url = "https://" + addr
		cfg, err := pki.ClientConfig("", "", ca)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: cfg}
		o, err := client.WithServerCA(ca)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if t.proc, err = l.spawn(filepath.Join(dir, l.name+"-"+name+".log"), bin, args...); err != nil {
		return nil, err
	}
	if err := benchutil.WaitReadyWith(hc, t.url+"/readyz", 20*time.Second); err != nil {
		return t, err
	}
	room, _, err := client.New(t.url, id, opts...).CreateRoomWithKey(context.Background(), "bench")
	if err != nil {
		return t, err
	}
	t.path = "/v1/rooms/" + room.ID + "/keys/" + id.Handle
	return t, nil
}
