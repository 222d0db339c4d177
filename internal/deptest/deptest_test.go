// Package deptest holds the dependency budget: what each program may link.
// A daemon that runs on every node pulls in no operator tooling, and no
// production code depends on the testing framework.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestMembershipdBudget(t *testing.T) {
	forbidden := []string{
		"github.com/hashicorp/hcl",  // the spec belongs to the operator's tool
		"github.com/zclconf/go-cty", // comes with hcl
		"github.com/spf13/cobra",    // membershipd's flags are the stdlib's
		"github.com/unibus/unibus/provision",
		"testing",
	}
	for _, d := range deps(t, "github.com/unibus/unibus/cmd/membershipd") {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("membershipd links %s", d)
			}
		}
	}
}

// TestNoTestingInProduction: neither program links the testing framework
// or the test-only helpers.
func TestNoTestingInProduction(t *testing.T) {
	testOnly := map[string]bool{
		"testing": true,
		"github.com/rogpeppe/go-internal/testscript":   true,
		"github.com/unibus/unibus/internal/scripttest": true,
		"github.com/unibus/unibus/internal/testbin":    true,
	}
	for _, prog := range []string{"cmd/unibus", "cmd/membershipd"} {
		for _, d := range deps(t, "github.com/unibus/unibus/"+prog) {
			if testOnly[d] {
				t.Errorf("%s links %s", prog, d)
			}
		}
	}
}
