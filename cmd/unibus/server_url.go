package main

import (
	"fmt"
	"net/netip"
	"net/url"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
)

// serverOptions checks --server and turns --server-ca into client options.
//
// A plain http:// server beyond loopback is refused unless
// --allow-plain-http: requests are signed, but the answers are not, so
// anyone on the path could hand out a recipient of their own to seal a room
// key to, and read every member record and sealed key going by.
func (f *busFlags) serverOptions() ([]client.Option, error) {
	u, err := url.Parse(f.server)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, cli.WithHint(cli.Usagef("--server %q: want an http:// or https:// URL", f.server), "such as https://node1.example:8470")
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) && !f.allowPlainHTTP {
		return nil, cli.WithHint(fmt.Errorf("--server %s: plain HTTP to a host that is not loopback: answers could be read and forged on the way", f.server),
			"use https://%s with --server-ca (the cluster's client-ca.crt), or pass --allow-plain-http on a network you trust", u.Host)
	}
	if u.Scheme != "https" || f.serverCA == "" {
		return nil, nil
	}
	ca, err := client.WithServerCA(f.serverCA)
	if err != nil {
		return nil, err
	}
	return []client.Option{ca}, nil
}

// loopbackHost reports whether host is this machine: localhost, 127.0.0.0/8
// or ::1. Other names are not resolved: what a name points at can change.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
