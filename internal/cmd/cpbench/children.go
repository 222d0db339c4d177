package main

import (
	"bufio"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/benchutil"
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
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		a, err := reqsign.Parse(r.Header.Get("Authorization"))
		if err != nil || reqsign.VerifyKey(pub, a, r.Method, r.RequestURI, time.Now(), time.Minute) != nil {
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

// verifyRate is the verify rate of GOMAXPROCS goroutines for a second, on
// signatures of a throwaway member.
func verifyRate() (float64, error) {
	id, err := client.GenerateIdentity("alice")
	if err != nil {
		return 0, err
	}
	path := "/v1/rooms/0123456789abcdef/keys/alice"
	return benchutil.VerifyRate(id.SignPub(), "GET", path, signMany(id, path, 256), time.Second)
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
