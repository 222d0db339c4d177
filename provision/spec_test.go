package provision

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// diagLines renders diagnostics as "LINE:COL Summary" ("warning LINE:COL
// Summary" for warnings), sorted, the form the bad specs state them in.
func diagLines(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		line := pos + " " + d.Summary
		if d.Severity == hcl.DiagWarning {
			line = "warning " + line
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// wantLines reads the "# want: LINE:COL Summary" comments of a bad spec.
func wantLines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, rest)
		}
	}
	slices.Sort(out)
	return out
}

// Every bad spec in testdata/bad yields exactly the diagnostics it lists,
// each at its line and column, all in one load; and the text writer shows
// the offending source line.
func TestBadSpecs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.hcl")
	if len(files) < 10 {
		t.Fatalf("found %d bad specs, want the whole folder", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".hcl"), func(t *testing.T) {
			want := wantLines(t, f)
			if len(want) == 0 {
				t.Fatalf("%s lists no '# want:' diagnostics", f)
			}
			spec, srcs, diags := LoadFiles(f, nil)
			if spec != nil {
				t.Fatalf("Load accepted %s", f)
			}
			got := diagLines(diags)
			if !slices.Equal(got, want) {
				t.Fatalf("diagnostics of %s:\n got:\n  %s\nwant:\n  %s", f, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, srcs, diags); err != nil {
				t.Fatal(err)
			}
			first := diags[0]
			if first.Subject != nil {
				loc := fmt.Sprintf("on %s line %d", f, first.Subject.Start.Line)
				if !strings.Contains(buf.String(), loc) {
					t.Fatalf("diagnostic text lacks %q:\n%s", loc, buf.String())
				}
			}
		})
	}
}

// The three-hosts example decodes to the values its variables, locals and
// functions compute, with the defaults filled in.
func TestThreeHostsValues(t *testing.T) {
	keys := newExampleKeys(t)
	s, _ := keys.load(t, "../examples/three-hosts", nil)
	if !s.IsCluster() || s.UnitName() != "membershipd-cluster.service" {
		t.Fatalf("three-hosts: cluster %v, unit %s", s.IsCluster(), s.UnitName())
	}
	c := s.Cluster
	if c.Name != "prod" || c.BusAuth != "enforce" || c.KVReplicas != 3 || !c.Monitor || !c.ClientTLS || c.JSSync != "always" {
		t.Fatalf("cluster block decoded to %+v", c)
	}
	if got := strings.Join(c.Rollout.Order, ","); got != "datardos,homer,magnus" {
		t.Errorf("rollout order %s", got)
	}
	if c.Rollout.ReadyTimeout.String() != "2m0s" || c.Rollout.ConvergeTimeout.String() != "5m0s" || c.Rollout.Samples != DefaultSamples {
		t.Errorf("timeouts %v %v", c.Rollout.ReadyTimeout, c.Rollout.ConvergeTimeout)
	}
	if c.PKI.Validity.Hours() != 365*24 || c.PKI.RenewBefore.Hours() != 30*24 {
		t.Errorf("pki validity %v renew %v", c.PKI.Validity, c.PKI.RenewBefore)
	}
	if len(c.ClientNetworks) != 1 || c.ClientNetworks[0].String() != "10.20.0.0/24" {
		t.Errorf("client networks %v", c.ClientNetworks)
	}
	m := s.Node("magnus")
	if m.Addresses[0].String() != "10.20.0.11" || m.DNS[0] != "magnus.prod.example" || m.RouteHost != "magnus.prod.example" {
		t.Errorf("magnus: %+v", m)
	}
	if m.Ports != (Ports{8470, 4250, 6250, 8222}) || m.Target.Root != "/" || m.Target.SSH != "root@magnus.prod.example" {
		t.Errorf("magnus ports %+v target %+v", m.Ports, m.Target)
	}
	if s.Node("datardos").Target.Binary != DefaultBinary {
		t.Errorf("binary default %s", s.Node("datardos").Target.Binary)
	}

	staging, _ := keys.load(t, "../examples/three-hosts", map[string]string{"domain": "staging.example", "network": "10.30.0.0/24"})
	if h := staging.Node("homer"); h.DNS[0] != "homer.staging.example" || h.Addresses[0].String() != "10.30.0.12" {
		t.Errorf("-var domain, network: homer is %v %v", h.DNS, h.Addresses)
	}
	withTypo := map[string]string{"domian": "x"}
	for n, v := range keys.vars {
		withTypo[n] = v
	}
	_, diags := Load("../examples/three-hosts", withTypo)
	if got := diagLines(diags); len(got) != 1 || got[0] != "- Undeclared variable" {
		t.Errorf("-var domian=x: %v", got)
	}
}

// A folder is one spec: blocks, variables and locals from every .hcl file
// in it, locals in any order; a mistake cites the file it is in.
func TestFolderSpec(t *testing.T) {
	s := mustLoad(t, "testdata/split", nil)
	if len(s.Nodes) != 3 || s.Node("c").Ports.HTTP != 9120 {
		t.Fatalf("split spec: %d nodes, c's http port %d", len(s.Nodes), s.Node("c").Ports.HTTP)
	}
	if got := strings.Join(s.Cluster.Rollout.Order, ","); got != "a,c,b" {
		t.Errorf("rollout order %s, want a,c,b (b left out, so last)", got)
	}
	_, diags := Load("testdata/split", map[string]string{"base_port": "80"})
	var files []string
	for _, d := range diags {
		files = append(files, fmt.Sprintf("%s:%d", filepath.Base(d.Subject.Filename), d.Subject.Start.Line))
	}
	if strings.Join(files, " ") != "nodes.hcl:10 nodes.hcl:16 nodes.hcl:22" {
		t.Errorf("-var base_port=80: diagnostics at %v, want the three http ports in nodes.hcl", files)
	}
}
