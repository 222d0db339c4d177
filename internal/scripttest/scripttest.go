// Package scripttest holds the testscript commands the CLI tests of both
// programs share: free and held ports, waiting for a daemon, capturing a
// value from output, and file modes.
package scripttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/unibus/unibus/pki"
)

// Commands returns the shared commands, to merge into testscript.Params.Cmds.
func Commands() map[string]func(*testscript.TestScript, bool, []string) {
	return map[string]func(*testscript.TestScript, bool, []string){
		"freeport": cmdFreePort,
		"holdport": holdPort,
		"waithttp": cmdWaitHTTP,
		"waitsub":  cmdWaitSub,
		"capture":  cmdCapture,
		"mode":     cmdMode,
	}
}

// cmdFreePort VAR...: picks free loopback ports for a daemon to bind.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	for _, v := range args {
		p, err := FreePort()
		ts.Check(err)
		ts.Setenv(v, strconv.Itoa(p))
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

// cmdWaitHTTP URL [-ca FILE] [-out FILE]: waits until URL answers 200. An
// https:// URL is verified against the CA bundle FILE only (TLS 1.3); -out
// keeps the 200 answer's body in FILE.
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 || len(args)%2 != 1 {
		ts.Fatalf("usage: waithttp URL [-ca FILE] [-out FILE]")
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	var out string
	for i := 1; i < len(args); i += 2 {
		switch args[i] {
		case "-ca":
			cfg, err := pki.ClientConfig("", "", ts.MkAbs(args[i+1]))
			ts.Check(err)
			hc.Transport = &http.Transport{TLSClientConfig: cfg}
		case "-out":
			out = ts.MkAbs(args[i+1])
		default:
			ts.Fatalf("waithttp: unknown option %s", args[i])
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(args[0])
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if out != "" {
					ts.Check(os.WriteFile(out, body, 0o644))
				}
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s not 200 after 60s (last error: %v)", args[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdWaitSub MONITOR_PORT CONN_NAME: waits until the connection named
// CONN_NAME has a subscription, read from the real nats-server monitor, so
// a script sends only once a background listener is subscribed.
func cmdWaitSub(ts *testscript.TestScript, neg bool, args []string) {
	url := "http://127.0.0.1:" + args[0] + "/connz?subs=1"
	deadline := time.Now().Add(60 * time.Second)
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

// holdPort VAR binds a free loopback port for the rest of the script and
// puts its number in $VAR, so a script can prove a taken port is refused.
func holdPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdport VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Defer(func() { ln.Close() })
	ts.Setenv(args[0], strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

// cmdMode asserts a file's permission bits: "mode 0600 FILE...". Key
// permissions are part of what unibus promises, and testscript has no
// built-in way to see them.
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: mode PERM FILE...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("mode %q: %v", args[0], err)
	}
	for _, f := range args[1:] {
		fi, err := os.Stat(ts.MkAbs(f))
		ts.Check(err)
		got := uint64(fi.Mode().Perm())
		if (got == want) == neg {
			ts.Fatalf("%s has mode %s, want %s%04o", f, fmt.Sprintf("%04o", got), map[bool]string{true: "not ", false: ""}[neg], want)
		}
	}
}
