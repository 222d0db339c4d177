package main

import "testing"

// The plain-HTTP rule of --server: loopback always, another host only with
// --allow-plain-http, https:// always (verified when it connects).
func TestServerOptionsPlainHTTP(t *testing.T) {
	for _, tc := range []struct {
		server string
		allow  bool
		ok     bool
	}{
		{"http://127.0.0.1:8470", false, true},
		{"http://127.8.9.1:8470", false, true},
		{"http://localhost:8470", false, true},
		{"http://[::1]:8470", false, true},
		{"http://10.0.0.1:8470", false, false},
		{"http://node1.example:8470", false, false},
		{"http://127.0.0.1.example:8470", false, false},
		{"http://[::]:8470", false, false},
		{"http://10.0.0.1:8470", true, true},
		{"https://10.0.0.1:8470", false, true},
		{"10.0.0.1:8470", false, false},
		{"https://", false, false},
	} {
		f := busFlags{server: tc.server, allowPlainHTTP: tc.allow}
		_, err := f.serverOptions()
		if (err == nil) != tc.ok {
			t.Errorf("--server %s (allow-plain-http %v): err %v; want ok %v", tc.server, tc.allow, err, tc.ok)
		}
	}
}
