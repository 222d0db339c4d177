// Command dataplanebench compares membershipd's embedded data plane with a
// standalone nats-server of the same version, both driven by the real
// `nats bench`, and measures membershipd's start-to-ready time and idle RSS.
//
// Rounds are interleaved (every target once per round, in turn) and medians
// reported, because the machine is shared and noisy. Run it through
// `make bench-dataplane`, which builds and installs what it needs.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/unibus/unibus/internal/benchutil"
)

type target struct {
	name     string
	embedded bool
	sync     string // "always" or a duration
}

type sample struct {
	core, js   float64 // msgs/s
	ready      time.Duration
	idleRSSKiB int
}

func main() {
	membershipd := flag.String("membershipd", "bin/membershipd", "membershipd binary")
	natsServer := flag.String("nats-server", ".bench/bin/nats-server", "standalone nats-server binary (same version as embedded)")
	natsCLI := flag.String("nats", ".bench/bin/nats", "natscli binary")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	coreMsgs := flag.Int("core-msgs", 1_000_000, "core NATS messages per run")
	jsMsgs := flag.Int("js-msgs", 20_000, "JetStream messages per run (sync=always fsyncs each batch: keep it small)")
	flag.Parse()

	targets := []target{
		{"embedded sync=always", true, "always"},
		{"standalone sync=always", false, "always"},
		{"embedded sync=2m", true, "2m"},
		{"standalone sync=2m", false, "2m"},
	}
	results := map[string][]sample{}
	for r := 1; r <= *rounds; r++ {
		for _, t := range targets {
			s, err := runOnce(t, *membershipd, *natsServer, *natsCLI, *coreMsgs, *jsMsgs)
			if err != nil {
				fmt.Fprintf(os.Stderr, "dataplanebench: %s: %v\n", t.name, err)
				os.Exit(1)
			}
			results[t.name] = append(results[t.name], s)
			fmt.Fprintf(os.Stderr, "round %d %-24s core %9.0f msg/s  js %8.0f msg/s  ready %4dms  idle rss %d MiB\n",
				r, t.name, s.core, s.js, s.ready.Milliseconds(), s.idleRSSKiB/1024)
		}
	}

	med := func(name string, f func(sample) float64) float64 {
		var xs []float64
		for _, s := range results[name] {
			xs = append(xs, f(s))
		}
		return benchutil.Median(xs)
	}
	core := func(s sample) float64 { return s.core }
	js := func(s sample) float64 { return s.js }
	fmt.Printf("\ndata plane, 128-byte messages, medians of %d interleaved rounds\n", *rounds)
	fmt.Printf("(ready: membershipd until /readyz 200; standalone until its port accepts)\n")
	fmt.Printf("%-24s %14s %14s %10s %12s\n", "target", "core msg/s", "js R1 msg/s", "ready ms", "idle RSS MiB")
	for _, t := range targets {
		fmt.Printf("%-24s %14.0f %14.0f %10.0f %12.1f\n", t.name,
			med(t.name, core), med(t.name, js),
			med(t.name, func(s sample) float64 { return float64(s.ready.Milliseconds()) }),
			med(t.name, func(s sample) float64 { return float64(s.idleRSSKiB) / 1024 }))
	}
	fmt.Printf("\nembedded / standalone (target >= 0.95):\n")
	for _, sync := range []string{"always", "2m"} {
		e, s := "embedded sync="+sync, "standalone sync="+sync
		fmt.Printf("  sync=%-6s core %.2fx   jetstream %.2fx\n", sync, med(e, core)/med(s, core), med(e, js)/med(s, js))
	}
	fmt.Printf("cost of --js-sync always (embedded, js msg/s always / 2m): %.2fx\n",
		med("embedded sync=always", js)/med("embedded sync=2m", js))
}

// runOnce starts a fresh server for t, measures readiness and idle RSS
// (membershipd only), runs both workloads, and stops the server.
func runOnce(t target, membershipd, natsServer, natsCLI string, coreMsgs, jsMsgs int) (sample, error) {
	dir, err := os.MkdirTemp("", "dataplanebench-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	natsPort, httpPort := benchutil.FreePort(), benchutil.FreePort()
	var cmd *exec.Cmd
	if t.embedded {
		cmd = exec.Command(membershipd,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
			"--nats-addr", fmt.Sprintf("127.0.0.1:%d", natsPort),
			"--state-dir", filepath.Join(dir, "state"),
			"--node-name", "bench", "--bus-auth", "off", "--js-sync", t.sync)
	} else {
		conf := filepath.Join(dir, "nats.conf")
		os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nserver_name: bench\njetstream { store_dir: %q, sync_interval: %s }\n",
			natsPort, filepath.Join(dir, "js"), t.sync), 0o600)
		cmd = exec.Command(natsServer, "-c", conf)
	}
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()

	var s sample
	if t.embedded {
		err = benchutil.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort), 20*time.Second)
	} else {
		err = waitPort(natsPort, 20*time.Second)
	}
	if err != nil {
		return s, err
	}
	s.ready = time.Since(start)
	time.Sleep(2 * time.Second) // let start-up garbage settle before reading idle RSS
	s.idleRSSKiB = rssKiB(cmd.Process.Pid)
	url := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	if s.core, err = natsBench(natsCLI, dir, url, "pub", "bench.core", coreMsgs); err != nil {
		return s, err
	}
	if s.js, err = natsBench(natsCLI, dir, url, "js", "bench.js", jsMsgs); err != nil {
		return s, err
	}
	return s, nil
}

func natsBench(natsCLI, dir, url, kind, subject string, msgs int) (float64, error) {
	out := filepath.Join(dir, kind+".csv")
	args := []string{"-s", url, "bench"}
	if kind == "js" {
		args = append(args, "js", "pub", "async", "--create", "--purge", "--replicas", "1", "--storage", "file")
	} else {
		args = append(args, "pub")
	}
	args = append(args, subject, "--msgs", strconv.Itoa(msgs), "--size", "128", "--clients", "1", "--no-progress", "--csv", out)
	if b, err := exec.Command(natsCLI, args...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("nats %s: %v: %s", strings.Join(args, " "), err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		return 0, fmt.Errorf("read %s: %v", out, err)
	}
	return strconv.ParseFloat(rows[1][4], 64) // MsgsPerSec of the one client
}

func waitPort(port int, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("port %d not open after %s", port, timeout)
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return 0
}
