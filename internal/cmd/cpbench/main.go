// Command cpbench measures membershipd's signed control-plane throughput on
// its hot path (a member fetching its sealed room key) against the physical
// limit of that path: one Ed25519 verify per request, measured on the same
// cores in the same run.
//
// The daemon runs as its own process, and the load comes from wrk (C, a
// second process) replaying requests signed before the clock starts, so the
// number is the server's, not a Go HTTP client's. Beside it, in the same
// rounds, runs a verify-only HTTP server: the least a signed-request server
// can do, which shows what HTTP itself leaves of the cores.
//
// Two layouts run, interleaved with the verify measurement, medians
// reported:
//   - shared: server and wrk on both cores, the verify rate on both cores;
//   - split: the server on core 0 (GOMAXPROCS=1), wrk on core 1, the
//     verify rate on core 0: the server has its core to itself, as it has
//     when its clients are other machines.
//
// With -https it compares instead signed requests/s over HTTPS (TLS 1.3,
// keep-alive) with plain HTTP, two membershipd processes side by side in
// the same layouts and rounds (see runHTTPS).
//
// Run it through `make bench-controlplane` and `make bench-https`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/benchutil"
)

func main() {
	child := flag.String("child", "", "internal: run as the verify or baseline child")
	signPub := flag.String("sign-pub", "", "internal: the baseline child's member key")
	bin := flag.String("membershipd", "bin/membershipd", "membershipd binary")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	duration := flag.Duration("duration", 5*time.Second, "wrk run per round")
	conns := flag.Int("connections", 32, "wrk connections")
	https := flag.Bool("https", false, "compare signed requests/s over HTTPS with plain HTTP instead")
	flag.Parse()
	var err error
	switch *child {
	case "verify":
		var rate float64
		if rate, err = verifyRate(); err == nil {
			fmt.Println(rate)
		}
	case "baseline":
		err = serveBaseline(*signPub)
	case "":
		if *https {
			err = runHTTPS(*bin, *rounds, *duration, *conns)
		} else {
			err = run(*bin, *rounds, *duration, *conns)
		}
	default:
		err = fmt.Errorf("unknown -child %q", *child)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpbench:", err)
		os.Exit(1)
	}
}

// layout is where the servers and wrk run: CPU lists for taskset ("" for
// anywhere) and the servers' GOMAXPROCS.
type layout struct {
	name                 string
	serverCPUs, wrkCPUs  string
	procs, wrkThreads    int
	membershipd, verify  *process
	baseURL, baselineURL string
	path                 string
	md, bl               series
	verifyRates          []float64
	mdRatio, blRatio     []float64 // each round's rate / that round's verify rate
}

// series collects one server's rounds.
type series struct{ rate, p50, p99, cpuPerReq, loadShare []float64 }

func (s *series) add(r wrkResult) {
	s.rate, s.p50, s.p99 = append(s.rate, r.rate), append(s.p50, r.p50), append(s.p99, r.p99)
	s.cpuPerReq = append(s.cpuPerReq, r.serverCPU.Seconds()/r.requests)
	s.loadShare = append(s.loadShare, r.wrkCPU.Seconds()/(r.wrkCPU+r.serverCPU).Seconds())
}

func run(bin string, rounds int, duration time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "cpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	id, _ := client.GenerateIdentity("alice")
	script := filepath.Join(dir, "replay.lua")
	if err := os.WriteFile(script, []byte(luaScript), 0o644); err != nil {
		return err
	}
	n := runtime.NumCPU()
	layouts := []*layout{{name: "shared", procs: n, wrkThreads: n}}
	if n >= 2 {
		layouts = append(layouts, &layout{name: "split", serverCPUs: "0", wrkCPUs: "1", procs: 1, wrkThreads: 1})
	}
	for _, l := range layouts {
		defer l.stop()
		if err := l.start(bin, self, dir, id); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	for r := 1; r <= rounds; r++ {
		for _, l := range layouts {
			if err := l.round(self, dir, id, script, duration, conns); err != nil {
				return fmt.Errorf("round %d, %s: %w", r, l.name, err)
			}
			i := len(l.verifyRates) - 1
			fmt.Fprintf(os.Stderr, "round %d %-6s: membershipd %6.0f req/s, verify-only HTTP %6.0f req/s, Ed25519 %6.0f verify/s: %.2fx\n",
				r, l.name, l.md.rate[i], l.bl.rate[i], l.verifyRates[i], l.md.rate[i]/l.verifyRates[i])
		}
	}
	fmt.Printf("\nsealed-key fetch (signed GET), medians of %d interleaved rounds, wrk -c%d\n", rounds, conns)
	for _, l := range layouts {
		l.report()
	}
	return nil
}

// start runs the layout's membershipd (its own state dir, bootstrapped with
// id, a room with a sealed key for id) and verify-only server.
func (l *layout) start(bin, self, dir string, id *client.Identity) error {
	state := filepath.Join(dir, l.name)
	selfVouch, err := id.SelfVouch()
	if err != nil {
		return err
	}
	if out, err := exec.Command(bin, "bootstrap", "--state-dir", state, "--handle", id.Handle,
		"--sign-pub", id.SignPub(), "--age-recipient", id.Recipient(), "--vouch", selfVouch).CombinedOutput(); err != nil {
		return fmt.Errorf("bootstrap: %v: %s", err, out)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", benchutil.FreePort())
	l.membershipd, err = l.spawn(filepath.Join(dir, l.name+".log"), bin, "--state-dir", state,
		"--http-addr", httpAddr, "--nats-addr", "127.0.0.1:0", "--log-format", "json")
	if err != nil {
		return err
	}
	l.baseURL = "http://" + httpAddr
	if err := benchutil.WaitReady(l.baseURL+"/readyz", 20*time.Second); err != nil {
		return err
	}
	room, _, err := client.New(l.baseURL, id).CreateRoomWithKey(context.Background(), "bench")
	if err != nil {
		return err
	}
	l.path = "/v1/rooms/" + room.ID + "/keys/" + id.Handle
	baselineAddr := fmt.Sprintf("127.0.0.1:%d", benchutil.FreePort())
	l.verify, err = l.spawn(filepath.Join(dir, l.name+"-baseline.log"), self, "-child", "baseline", "-sign-pub", id.SignPub(), "-listen", baselineAddr)
	if err != nil {
		return err
	}
	l.baselineURL = "http://" + baselineAddr
	return benchutil.WaitReady(l.baselineURL+"/readyz", 10*time.Second)
}

// round measures the verify rate, then wrk against each server, with the
// same freshly signed requests (the verify-only server keeps no nonces).
func (l *layout) round(self, dir string, id *client.Identity, script string, d time.Duration, conns int) error {
	out, err := l.command(self, "-child", "verify").Output()
	if err != nil {
		return fmt.Errorf("verify rate: %w", err)
	}
	v, err := strconv.ParseFloat(string(out[:len(out)-1]), 64)
	if err != nil {
		return fmt.Errorf("verify rate: %q: %w", out, err)
	}
	// Enough signed requests for the round at up to 40k req/s; each nonce
	// is used once, as the server insists.
	authFile := filepath.Join(dir, "auth.txt")
	if err := writeLines(authFile, signMany(id, l.path, int(d.Seconds()*40000))); err != nil {
		return err
	}
	b, err := l.wrk(script, authFile, l.baselineURL+l.path, d, conns, l.verify.cpu)
	if err != nil {
		return err
	}
	m, err := l.wrk(script, authFile, l.baseURL+l.path, d, conns, l.membershipd.cpu)
	if err != nil {
		return err
	}
	if m.non2xx+b.non2xx > 0 {
		return fmt.Errorf("%d requests were refused: the signed requests ran out or the server refused them", m.non2xx+b.non2xx)
	}
	l.md.add(m)
	l.bl.add(b)
	l.verifyRates = append(l.verifyRates, v)
	l.mdRatio, l.blRatio = append(l.mdRatio, m.rate/v), append(l.blRatio, b.rate/v)
	return nil
}

func (l *layout) report() {
	med := benchutil.Median
	rq, vf, bq := med(l.md.rate), med(l.verifyRates), med(l.bl.rate)
	verifyCost := float64(l.procs) / vf // CPU seconds per verify
	where := fmt.Sprintf("servers and wrk -t%d on all %d cores", l.wrkThreads, l.procs)
	if l.serverCPUs != "" {
		where = fmt.Sprintf("servers on core %s (GOMAXPROCS=%d), wrk -t%d on core %s", l.serverCPUs, l.procs, l.wrkThreads, l.wrkCPUs)
	}
	fmt.Printf("\n%s: %s\n", l.name, where)
	fmt.Printf("  %-36s %11s %11s\n", "", "membershipd", "verify-only")
	fmt.Printf("  %-36s %11.0f %11.0f\n", "signed requests/s", rq, bq)
	fmt.Printf("  %-36s %11.0f\n", "Ed25519 verifies/s, same cores", vf)
	fmt.Printf("  %-36s %10.2fx %10.2fx  (target >= 0.5x; median of the rounds' ratios)\n", "requests / verifies", med(l.mdRatio), med(l.blRatio))
	fmt.Printf("  %-36s %9.2fms %9.2fms\n", "latency p50", med(l.md.p50)*1e3, med(l.bl.p50)*1e3)
	fmt.Printf("  %-36s %9.2fms %9.2fms\n", "latency p99", med(l.md.p99)*1e3, med(l.bl.p99)*1e3)
	fmt.Printf("  %-36s %9.0fµs %9.0fµs  (one verify: %.0f µs)\n", "server CPU a request", med(l.md.cpuPerReq)*1e6, med(l.bl.cpuPerReq)*1e6, verifyCost*1e6)
	fmt.Printf("  %-36s %10.0f%% %10.0f%%\n", "wrk's share of the CPU used", med(l.md.loadShare)*100, med(l.bl.loadShare)*100)
	fmt.Printf("  %-36s %10.2fx\n", "membershipd / verify-only", rq/bq)
}

func (l *layout) stop() {
	for _, p := range []*process{l.membershipd, l.verify} {
		if p != nil {
			p.stop()
		}
	}
}
