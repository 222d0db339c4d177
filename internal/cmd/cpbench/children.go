package main

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/reqsign"
)

var listen = flag.String("listen", "", "internal: the baseline child's address")

// serveBaseline serves the least a signed-request server can do: parse the
// header, verify the signature, answer a small JSON body. It shows what
// net/http, the kernel and wrk take of the same cores.
func serveBaseline(signPub string) error {
	pub, err := reqsign.PublicKey(signPub)
	if err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		a, err := reqsign.Parse(r.Header.Get("Authorization"))
		if err != nil || reqsign.VerifyKey(pub, a, r.Method, r.RequestURI, empty, time.Now(), time.Minute) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"room":"0123456789abcdef","handle":"alice","epoch":1,"sealed":"YWdlLWVuY3J5cHRpb24ub3JnL3YxCng="}` + "\n"))
	})}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// verifyRate runs the server's verify (decoded key, canonical string,
// Ed25519) on GOMAXPROCS goroutines for a second.
func verifyRate() float64 {
	id, _ := client.GenerateIdentity("alice")
	path := "/v1/rooms/0123456789abcdef/keys/alice"
	auths := signMany(id, path, 256)
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

func signMany(id *client.Identity, path string, n int) []string {
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
	return out
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
