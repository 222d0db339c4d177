package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// membershipdBin builds the real membershipd once per test process, for
// scripts that run it in the background.
var membershipdBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "unibus-test-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "membershipd")
	out, err := exec.Command("go", "build", "-o", bin, "../membershipd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build membershipd: %v\n%s", err, out)
	}
	return dir, nil
})

// setupPath puts the real membershipd on the scripts' PATH.
func setupPath(env *testscript.Env) error {
	dir, err := membershipdBin()
	if err != nil {
		return err
	}
	env.Setenv("PATH", dir+string(os.PathListSeparator)+env.Getenv("PATH"))
	return nil
}

// cmdFreePort VAR...: picks free loopback ports for a daemon to bind.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	for _, v := range args {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ts.Setenv(v, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		ln.Close()
	}
}

// cmdCapture VAR REGEXP FILE: sets VAR to the first group of REGEXP in FILE
// (stdout and stderr name the last command's output).
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: capture VAR REGEXP FILE")
	}
	m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile(args[2]))
	if len(m) < 2 {
		ts.Fatalf("capture: %q not found in %s", args[1], args[2])
	}
	ts.Setenv(args[0], m[1])
}

// cmdWaitHTTP URL: waits until URL answers 200.
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(args[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s not 200 after 20s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdWaitSub MONITOR_PORT CONN_NAME: waits until the connection named
// CONN_NAME has a subscription, read from the real nats-server monitor, so
// a script sends only once a background listener is subscribed.
func cmdWaitSub(ts *testscript.TestScript, neg bool, args []string) {
	url := "http://127.0.0.1:" + args[0] + "/connz?subs=1"
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			var connz struct {
				Connections []struct {
					Name string   `json:"name"`
					Subs []string `json:"subscriptions_list"`
				} `json:"connections"`
			}
			json.NewDecoder(resp.Body).Decode(&connz)
			resp.Body.Close()
			for _, c := range connz.Connections {
				if c.Name == args[1] && len(c.Subs) > 0 {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("no subscription from %q after 20s", args[1])
}
