package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unibus/unibus/units"
)

// membershipd serves plain HTTP beyond loopback only with
// --allow-plain-http, so a rendered node without a certificate
// (client_tls = false) on a non-loopback bind gets the flag, and every other
// node does not: with a certificate it serves HTTPS, on loopback plain HTTP
// is allowed anyway.
func TestRenderPlainHTTPFlag(t *testing.T) {
	for _, tc := range []struct {
		clientTLS, bind string
		want            bool
	}{
		{"true", "0.0.0.0", false},
		{"false", "0.0.0.0", true},
		{"false", "192.168.1.10", true},
		{"false", "127.0.0.1", false},
	} {
		t.Run(tc.clientTLS+" "+tc.bind, func(t *testing.T) {
			dir := t.TempDir()
			spec := fmt.Sprintf(`cluster "solo" {
  client_tls          = %s
  client_networks     = ["192.168.1.0/24"]
  operator_recipients = ["age1cecmhzxukfy6wjkzw2fwvxv9y4hqdm4rtwfalvxav8frhu7jjgpqel0k2v"]
}
node "solo" {
  addresses = ["192.168.1.10"]
  bind      = %q
}
`, tc.clientTLS, tc.bind)
			if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			s := mustLoad(t, dir, nil)
			d := mustRender(t, s, RenderOptions{})
			unit, err := units.Parse(d.Node("solo").File("etc/systemd/system/" + s.UnitName()).Content)
			if err != nil {
				t.Fatal(err)
			}
			exec := strings.Join(unit.Values("Service", "ExecStart"), " ")
			if got := strings.Contains(exec, " --allow-plain-http"); got != tc.want {
				t.Errorf("ExecStart=%s\nhas --allow-plain-http: %v, want %v", exec, got, tc.want)
			}
			if got := strings.Contains(exec, " --tls-cert "); got != (tc.clientTLS == "true") {
				t.Errorf("ExecStart=%s\nhas --tls-cert: %v, want %v", exec, got, tc.clientTLS == "true")
			}
		})
	}
}
