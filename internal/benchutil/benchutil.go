// Package benchutil holds what the benchmarks share: free loopback ports,
// waiting for /readyz, medians, and the Ed25519 verify rate.
package benchutil

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unibus/unibus/internal/reqsign"
)

// FreePort returns a loopback port that was free a moment ago.
func FreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitReady polls url until it answers 200, for at most timeout.
func WaitReady(url string, timeout time.Duration) error {
	return WaitReadyWith(&http.Client{Timeout: time.Second}, url, timeout)
}

// WaitReadyWith is WaitReady through c, for an https:// url with its CA.
func WaitReadyWith(c *http.Client, url string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not 200 after %s", url, timeout)
}

// Median of xs (sorted in place); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// VerifyRate is the physical limit of a signed-request server: it runs the
// server's check of each of auths (header parsed beforehand, the member's
// key decoded once as the server caches it, canonical string, Ed25519) on
// GOMAXPROCS goroutines for d, and returns verifies per second.
func VerifyRate(signPub, method, path string, auths []string, d time.Duration) (float64, error) {
	pub, err := reqsign.PublicKey(signPub)
	if err != nil {
		return 0, err
	}
	parsed := make([]reqsign.Auth, len(auths))
	for i, a := range auths {
		if parsed[i], err = reqsign.Parse(a); err != nil {
			return 0, err
		}
	}
	var total atomic.Int64
	var failed atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			n := 0
			for time.Now().Before(deadline) {
				for _, a := range parsed {
					if err := reqsign.VerifyKey(pub, a, method, path, time.Unix(a.Timestamp, 0), time.Minute); err != nil {
						failed.Store(err)
						return
					}
				}
				n += len(parsed)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}
