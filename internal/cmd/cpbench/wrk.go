package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// luaScript hands each wrk thread its own share of the pre-signed requests,
// formatted before the clock starts: a wrk.format per request costs wrk
// about as much CPU as the server spends on a request besides its verify.
const luaScript = `
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  reqs = {}
  local n = 0
  local nthreads = tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % nthreads == tid then table.insert(reqs, wrk.format("GET", nil, {Authorization = line})) end
    n = n + 1
  end
  exhausted = wrk.format("GET", nil, {Authorization = "exhausted"})
  idx = 0
end
function request()
  idx = idx + 1
  return reqs[idx] or exhausted
end
`

// wrkResult is one wrk run: throughput, latency, and the CPU time the
// server and wrk each used, to show where the cores went.
type wrkResult struct {
	rate, requests    float64
	p50, p99          float64 // seconds
	non2xx            int
	serverCPU, wrkCPU time.Duration
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in `)
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkLatency  = map[string]*regexp.Regexp{
		"50": regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)\b`),
		"99": regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)\b`),
	}
	unit = map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1}
)

// wrk runs wrk on the layout's load CPUs; serverCPU reads the server's CPU
// time before and after.
func (l *layout) wrk(script, authFile, url string, d time.Duration, conns int, serverCPU func() time.Duration) (wrkResult, error) {
	var res wrkResult
	args := []string{"-t", strconv.Itoa(l.wrkThreads), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency",
		"-s", script, url, "--", authFile, strconv.Itoa(l.wrkThreads)}
	name := "wrk"
	if l.wrkCPUs != "" {
		args = append([]string{"-c", l.wrkCPUs, "wrk"}, args...)
		name = "taskset" // which execs wrk: the process and its usage are wrk's
	}
	cmd := exec.Command(name, args...)
	cpu0 := serverCPU()
	out, err := cmd.CombinedOutput()
	res.serverCPU = serverCPU() - cpu0
	if err != nil {
		return res, fmt.Errorf("wrk: %v: %s", err, out)
	}
	res.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, parseWrk(out, &res)
}

// parseWrk reads the request count, rate, refusals and latency percentiles
// of wrk --latency output into res.
func parseWrk(out []byte, res *wrkResult) error {
	m, r := wrkRequests.FindSubmatch(out), wrkRate.FindSubmatch(out)
	if m == nil || r == nil {
		return fmt.Errorf("wrk output without a request count and Requests/sec: %s", out)
	}
	res.requests, _ = strconv.ParseFloat(string(m[1]), 64)
	res.rate, _ = strconv.ParseFloat(string(r[1]), 64)
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		res.non2xx, _ = strconv.Atoi(string(m[1]))
	}
	for pct, to := range map[string]*float64{"50": &res.p50, "99": &res.p99} {
		m := wrkLatency[pct].FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("wrk output without a %s%% latency: %s", pct, out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		*to = v * unit[string(m[2])]
	}
	return nil
}
