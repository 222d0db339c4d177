package provision

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints a plan for a person, Terraform-style: per node, "+"
// add, "~" change, "-" remove, the effective unit's diff and the restart,
// each with its reason; secrets as (hidden); then the summary line.
func (doc *PlanDoc) WriteText(w io.Writer) error {
	var b strings.Builder
	if len(doc.OperatorChanges) > 0 {
		fmt.Fprintf(&b, "Operator state (%s):\n", doc.StateDir)
		for _, c := range doc.OperatorChanges {
			mark := "~"
			if c.Action == CreateCAs || c.Action == CreatePassword || (c.Action == IssueLeaf && c.Reason == "missing") {
				mark = "+"
			}
			fmt.Fprintf(&b, "  %s %s\n", mark, c)
		}
		b.WriteString("\n")
	}
	for _, n := range doc.Nodes {
		if len(n.Changes) == 0 && n.Restart == nil {
			continue
		}
		where := n.Root
		if n.SSH != "" {
			where = n.SSH + ":" + n.Root // as scp names a remote path
		}
		if sv := n.Service; sv != nil {
			where += fmt.Sprintf("; %s %s, service %s", sv.Manager, sv.ManagerVersion, sv.ActiveState)
		}
		fmt.Fprintf(&b, "Node %s (%s):\n", n.Node, where)
		if sv := n.Service; sv != nil && len(sv.NotEnforced) > 0 {
			fmt.Fprintf(&b, "  ! %s %s does not enforce %s\n", sv.Manager, sv.ManagerVersion, strings.Join(sv.NotEnforced, " "))
		}
		for _, c := range n.Changes {
			mark := map[string]string{"add": "+", "change": "~", "remove": "-"}[c.Action]
			fmt.Fprintf(&b, "  %s %s  %s", mark, c.Path, modeNote(c))
			var tags []string
			if c.Secret {
				tags = append(tags, "(hidden)")
			}
			if c.KnownAfterApply {
				tags = append(tags, KnownAfterApply)
			}
			if len(tags) > 0 {
				b.WriteString("  " + strings.Join(tags, " "))
			}
			if len(c.Reasons) > 0 {
				b.WriteString("  # " + strings.Join(c.Reasons, "; "))
			}
			b.WriteString("\n")
		}
		if len(n.UnitDiff) > 0 {
			unit := ""
			if n.Restart != nil {
				unit = " " + n.Restart.Unit
			}
			fmt.Fprintf(&b, "  ~ effective unit%s (systemctl cat):\n", unit)
			for _, l := range n.UnitDiff {
				b.WriteString("      " + l + "\n")
			}
		}
		if r := n.Restart; r != nil {
			fmt.Fprintf(&b, "  ~ %s %s  # %s\n", r.Action, r.Unit, strings.Join(r.Reasons, "; "))
		}
		b.WriteString("\n")
	}
	b.WriteString(doc.Summary.Line() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func modeNote(c FileChange) string {
	if c.OldMode != "" {
		return c.OldMode + " -> " + c.Mode
	}
	return c.Mode
}

// Line is the summary line: "Plan: 3 to add, 1 to change, 0 to remove, 3
// restarts." or "No changes."
func (s Summary) Line() string {
	if s.Empty() {
		return "No changes. Every node matches the spec."
	}
	restarts := "restarts"
	if s.Restart == 1 {
		restarts = "restart"
	}
	line := fmt.Sprintf("Plan: %d to add, %d to change, %d to remove, %d %s.", s.Add, s.Change, s.Remove, s.Restart, restarts)
	if s.Operator > 0 {
		line += fmt.Sprintf(" Operator state: %d to change.", s.Operator)
	}
	return line
}
