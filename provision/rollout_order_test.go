package provision

import (
	"slices"
	"testing"
)

// The rollout order is the spec's, then the nodes it does not name in
// spec order, with the meta leader's node last whatever the spec says.
func TestRolloutOrder(t *testing.T) {
	s := &Spec{Nodes: []Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}, {Name: "n4"}}}
	s.Cluster.Rollout.Order = []string{"n3", "n1"}
	var ws []nodeWork
	for i := range s.Nodes {
		ws = append(ws, nodeWork{n: &s.Nodes[i]})
	}
	names := func(ws []nodeWork) (out []string) {
		for _, w := range ws {
			out = append(out, w.n.Name)
		}
		return out
	}
	for _, c := range []struct {
		meta string
		want []string
	}{
		{"", []string{"n3", "n1", "n2", "n4"}},
		{"n3", []string{"n1", "n2", "n4", "n3"}},
		{"n2", []string{"n3", "n1", "n4", "n2"}},
	} {
		if got := names(rolloutOrder(s, ws, c.meta)); !slices.Equal(got, c.want) {
			t.Errorf("meta leader %q: order %v, want %v", c.meta, got, c.want)
		}
	}
}

// A cluster is started whole only when nothing runs and every node is to
// start; one running node makes it a rollout.
func TestFreshCluster(t *testing.T) {
	start := &NodePlan{Restart: &Restart{Action: "start"}}
	restart := &NodePlan{Restart: &Restart{Action: "restart"}}
	up := &NodeState{Service: &ServiceState{ActiveState: "active"}}
	down := &NodeState{Service: &ServiceState{ActiveState: "inactive"}}
	for _, c := range []struct {
		name string
		todo []nodeWork
		want bool
	}{
		{"all new", []nodeWork{{np: start}, {np: start}, {np: start}}, true},
		{"all stopped", []nodeWork{{np: start, seen: down}, {np: start, seen: down}}, true},
		{"one running, files only", []nodeWork{{np: start, seen: down}, {np: &NodePlan{}, seen: up}}, false},
		{"a restart", []nodeWork{{np: start}, {np: restart, seen: up}}, false},
		{"nothing to start", []nodeWork{{np: &NodePlan{}}}, false},
	} {
		if got := fresh(c.todo); got != c.want {
			t.Errorf("%s: fresh = %v, want %v", c.name, got, c.want)
		}
	}
}
