// Command cpbench measures membershipd's signed control-plane throughput on
// its hot path (a member fetching its sealed room key) against the physical
// limit of that path: one Ed25519 verify per request, measured on all cores
// in the same run.
//
// The daemon runs as its own process, and the load comes from wrk (C, a
// second process) replaying requests signed before the clock starts, so the
// number is the server's, not a Go HTTP client's. Rounds are interleaved
// with the verify measurement and medians reported. Run it through
// `make bench-controlplane`.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unibus/unibus/internal/benchutil"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
)

func main() {
	bin := flag.String("membershipd", "bin/membershipd", "membershipd binary")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	duration := flag.Duration("duration", 5*time.Second, "wrk run per round")
	conns := flag.Int("connections", 32, "wrk connections")
	flag.Parse()
	if err := run(*bin, *rounds, *duration, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "cpbench:", err)
		os.Exit(1)
	}
}

func run(bin string, rounds int, duration time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "cpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	id, _ := client.GenerateIdentity("alice")
	state := filepath.Join(dir, "state")
	if out, err := exec.Command(bin, "bootstrap", "--state-dir", state, "--handle", "alice",
		"--sign-pub", id.SignPub(), "--age-recipient", id.Recipient()).CombinedOutput(); err != nil {
		return fmt.Errorf("bootstrap: %v: %s", err, out)
	}
	httpPort := benchutil.FreePort()
	daemon := exec.Command(bin, "--state-dir", state, "--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--nats-addr", "127.0.0.1:0", "--log-format", "json")
	logf, _ := os.Create(filepath.Join(dir, "daemon.log"))
	daemon.Stderr = logf
	if err := daemon.Start(); err != nil {
		return err
	}
	defer func() { daemon.Process.Signal(os.Interrupt); daemon.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := benchutil.WaitReady(base+"/readyz", 20*time.Second); err != nil {
		return err
	}
	c := client.New(base, id)
	room, _, err := c.CreateRoomWithKey(context.Background(), "bench")
	if err != nil {
		return err
	}
	path := "/v1/rooms/" + room.ID + "/keys/alice"
	script := filepath.Join(dir, "replay.lua")
	os.WriteFile(script, []byte(luaScript), 0o644)

	baseline, err := startBaseline(id)
	if err != nil {
		return err
	}

	var reqRates, verifyRates, baseRates []float64
	for r := 1; r <= rounds; r++ {
		v := verifyRate(id, path)
		// Enough signed requests for the round at up to 40k req/s; each
		// nonce is used once, as the server insists.
		auths, err := signMany(id, path, int(duration.Seconds()*40000))
		if err != nil {
			return err
		}
		authFile := filepath.Join(dir, "auth.txt")
		if err := writeLines(authFile, auths); err != nil {
			return err
		}
		bRate, bNon2xx, err := wrk(script, authFile, baseline+path, duration, conns)
		if err != nil {
			return err
		}
		rate, non2xx, err := wrk(script, authFile, base+path, duration, conns)
		if err != nil {
			return err
		}
		if non2xx+bNon2xx > 0 {
			return fmt.Errorf("round %d: %d requests were refused: the signed requests ran out or the server refused them", r, non2xx+bNon2xx)
		}
		reqRates, verifyRates, baseRates = append(reqRates, rate), append(verifyRates, v), append(baseRates, bRate)
		fmt.Fprintf(os.Stderr, "round %d: membershipd %.0f req/s, verify-only HTTP %.0f req/s, Ed25519 %.0f verify/s on %d cores: %.2fx\n",
			r, rate, bRate, v, runtime.GOMAXPROCS(0), rate/v)
	}
	rq, vf, bl := benchutil.Median(reqRates), benchutil.Median(verifyRates), benchutil.Median(baseRates)
	fmt.Printf("\nsealed-key fetch (signed GET), medians of %d interleaved rounds, %d cores, wrk -c%d\n", rounds, runtime.GOMAXPROCS(0), conns)
	fmt.Printf("  membershipd signed requests/s  %10.0f\n", rq)
	fmt.Printf("  Ed25519 verifies/s             %10.0f  (the limit: one verify a request)\n", vf)
	fmt.Printf("  verify-only HTTP server req/s  %10.0f  (net/http + parse + verify, nothing else)\n", bl)
	fmt.Printf("  membershipd / verify rate      %10.2fx (target >= 0.5x)\n", rq/vf)
	fmt.Printf("  verify-only HTTP / verify rate %10.2fx (what HTTP on the same cores leaves)\n", bl/vf)
	fmt.Printf("  membershipd / verify-only HTTP %10.2fx\n", rq/bl)
	return nil
}

// startBaseline serves, in this process, the least a signed-request server
// can do: parse the header, verify the signature, answer a small JSON body.
// It shows what net/http, the kernel and wrk take on the same cores.
func startBaseline(id *client.Identity) (string, error) {
	pub, err := reqsign.PublicKey(id.SignPub())
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	empty := sha256.Sum256(nil)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := reqsign.Parse(r.Header.Get("Authorization"))
		if err != nil || reqsign.VerifyKey(pub, a, r.Method, r.RequestURI, empty, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"room":"0123456789abcdef","handle":"alice","epoch":1,"sealed":"YWdlLWVuY3J5cHRpb24ub3JnL3YxCng="}` + "\n"))
	}))
	return "http://" + ln.Addr().String(), nil
}

// luaScript hands each wrk thread its own share of the pre-signed headers.
const luaScript = `
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  auths = {}
  local n = 0
  local nthreads = tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % nthreads == tid then table.insert(auths, line) end
    n = n + 1
  end
  idx = 0
end
function request()
  idx = idx + 1
  local a = auths[idx]
  if a == nil then a = "exhausted" end
  return wrk.format("GET", nil, {Authorization = a})
end
`

func wrk(script, authFile, url string, d time.Duration, conns int) (rate float64, non2xx int, err error) {
	threads := 2
	out, err := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String(),
		"-s", script, url, "--", authFile, strconv.Itoa(threads)).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk output without Requests/sec: %s", out)
	}
	rate, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`).FindSubmatch(out); m != nil {
		non2xx, _ = strconv.Atoi(string(m[1]))
	}
	return rate, non2xx, nil
}

func signMany(id *client.Identity, path string, n int) ([]string, error) {
	out := make([]string, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	now := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				out[i], _ = reqsign.Sign(id.Sign, id.Handle, "GET", path, nil, now)
			}
		})
	}
	wg.Wait()
	return out, nil
}

// verifyRate runs the server's verify (decoded key, canonical string,
// Ed25519) on every core for a second.
func verifyRate(id *client.Identity, path string) float64 {
	auths, _ := signMany(id, path, 256)
	parsed := make([]reqsign.Auth, len(auths))
	for i, a := range auths {
		parsed[i], _ = reqsign.Parse(a)
	}
	pub, _ := reqsign.PublicKey(id.SignPub())
	sum := sha256.Sum256(nil)
	var total atomic.Int64
	start := time.Now()
	deadline := start.Add(time.Second)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			n := 0
			for time.Now().Before(deadline) {
				for _, a := range parsed {
					reqsign.VerifyKey(pub, a, "GET", path, sum, time.Unix(a.Timestamp, 0), time.Minute)
				}
				n += len(parsed)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}

func writeLines(path string, lines []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
