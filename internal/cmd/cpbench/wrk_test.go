package main

import (
	"strings"
	"testing"
)

// wrkOutput is wrk 4.1's --latency report, with a refusal line added as wrk
// prints it when a server answers non-2xx.
const wrkOutput = `Running 1s test @ http://127.0.0.1:18999/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.73ms    3.21ms  17.48ms   72.87%
    Req/Sec   253.80     15.96   280.00     70.00%
  Latency Distribution
     50%  695.00us
     75%    9.53ms
     90%   12.80ms
     99%    1.53s
  253 requests in 1.00s, 1.92MB read
  Non-2xx or 3xx responses: 7
Requests/sec:    252.73
Transfer/sec:      1.92MB
`

func TestParseWrk(t *testing.T) {
	var r wrkResult
	if err := parseWrk([]byte(wrkOutput), &r); err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 253, rate: 252.73, non2xx: 7, p50: 695e-6, p99: 1.53}
	if r != want {
		t.Errorf("parsed %+v; want %+v", r, want)
	}
	// A run that printed no latency distribution is an error, not zeros.
	noLatency := strings.Replace(wrkOutput, "     99%    1.53s\n", "", 1)
	if err := parseWrk([]byte(noLatency), &wrkResult{}); err == nil {
		t.Error("output without a 99% line parsed")
	}
}
