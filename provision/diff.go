package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/unibus/unibus/pki"
)

// NodePlan is what apply would do on one node.
type NodePlan struct {
	Node string `json:"node"`
	Root string `json:"root"`
	// SSH is the node's ssh target (user@host:port) when it is remote:
	// Root is a path there.
	SSH     string       `json:"ssh,omitempty"`
	Changes []FileChange `json:"changes"`
	// UnitDiff is the line diff of the effective unit (the base unit and
	// every drop-in, as systemctl cat shows them), when it changes on a
	// node that has the unit: "+ line", "- line", "  # /path" headers.
	UnitDiff []string      `json:"unit_diff,omitempty"`
	Restart  *Restart      `json:"restart,omitempty"`
	Service  *ServiceState `json:"service,omitempty"`
}

// FileChange is one file to add, change or remove.
type FileChange struct {
	Action  string `json:"action"` // add, change, remove
	Path    string `json:"path"`
	Mode    string `json:"mode,omitempty"`
	OldMode string `json:"old_mode,omitempty"`
	Secret  bool   `json:"secret,omitempty"`
	// KnownAfterApply: the content is produced by apply.
	KnownAfterApply bool `json:"known_after_apply,omitempty"`
	// SHA256 is the new content's hash; secrets carry a keyed
	// Fingerprint instead.
	SHA256      string   `json:"sha256,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	Reasons     []string `json:"reasons,omitempty"`
}

// Restart is a service to start or restart, and why.
type Restart struct {
	Action  string   `json:"action"` // start or restart
	Unit    string   `json:"unit"`
	Reasons []string `json:"reasons"`
}

// Diff compares each node's desired files with what was observed there.
// A node absent from nodes is compared with an empty node. key keys the
// fingerprints of secrets.
func Diff(s *Spec, d *Desired, nodes map[string]*NodeState, now time.Time, key []byte) []NodePlan {
	var out []NodePlan
	for _, nf := range d.Nodes {
		n := s.Node(nf.Node)
		obs := nodes[nf.Node]
		if obs == nil {
			obs = &NodeState{Files: map[string]FileState{}, Units: map[string][]byte{}, Certs: map[string]CertState{}}
		}
		np := NodePlan{Node: nf.Node, Root: nf.Target.Root, SSH: nf.Target.SSH, Service: obs.Service}
		wanted := map[string]bool{}
		for _, f := range nf.Files {
			wanted[f.Path] = true
			if c, ok := fileChange(s, n, f, obs, now, key); ok {
				np.Changes = append(np.Changes, c)
			}
		}
		for _, p := range sortedKeys(obs.Files) {
			if !wanted[p] {
				np.Changes = append(np.Changes, FileChange{Action: "remove", Path: p, Mode: modeString(obs.Files[p].Mode),
					Reasons: []string{"no longer in the spec"}})
			}
		}
		np.UnitDiff = unitDiff(nf, obs, nf.Unit)
		np.Restart = restart(nf, obs, nf.Unit, np.Changes)
		out = append(out, np)
	}
	return out
}

func fileChange(s *Spec, n *Node, f File, obs *NodeState, now time.Time, key []byte) (FileChange, bool) {
	c := FileChange{Path: f.Path, Mode: modeString(f.Mode), Secret: f.Secret, KnownAfterApply: f.Pending != ""}
	if f.Pending == "" {
		sum := sha256.Sum256(f.Content)
		if f.Secret {
			c.Fingerprint = Fingerprint(key, f.Content)
		} else {
			c.SHA256 = hex.EncodeToString(sum[:])
		}
	}
	have, ok := obs.Files[f.Path]
	if !ok {
		c.Action = "add"
		if f.Pending != "" {
			c.Reasons = []string{f.Pending}
		}
		return c, true
	}
	c.Action = "change"
	if f.Pending != "" {
		c.Reasons = append(c.Reasons, f.Pending)
	} else if sum := sha256.Sum256(f.Content); hex.EncodeToString(sum[:]) != have.SHA256 {
		c.Reasons = append(c.Reasons, contentReason(s, n, f, obs, now))
	}
	if have.Mode != f.Mode {
		c.OldMode = modeString(have.Mode)
		c.Reasons = append(c.Reasons, fmt.Sprintf("mode changed (%s -> %s)", c.OldMode, c.Mode))
	}
	return c, len(c.Reasons) > 0
}

// contentReason says why a file's content differs; for a node certificate,
// what is wrong with the one the node has.
func contentReason(s *Spec, n *Node, f File, obs *NodeState, now time.Time) string {
	kind := map[string]pki.Kind{"route.crt": pki.KindRoute, "client.crt": pki.KindServer}[path.Base(f.Path)]
	cs, ok := obs.Certs[f.Path]
	if kind == "" || !ok || n == nil {
		return "content changed"
	}
	for _, l := range s.leaves(n) {
		if l.Kind == kind {
			if dec := pki.Decide(l, nil, cs.cert, now); dec.Action == pki.Renew {
				return dec.Reason
			}
		}
	}
	return "content changed (a newer certificate)"
}

// restart decides whether the service must (re)start: any file it reads
// or its unit changed, or it is not running.
func restart(nf NodeFiles, obs *NodeState, unit string, changes []FileChange) *Restart {
	r := &Restart{Action: "restart", Unit: unit}
	base := nf.Target.Scope.UnitPath(unit)
	if _, ok := obs.Files[base]; !ok {
		return &Restart{Action: "start", Unit: unit, Reasons: []string{"new unit"}}
	}
	dropIns := base + ".d/"
	// Files changed for the same reason share one: "route.crt, route.key:
	// renew: expires in 12 d < renew window 30 d".
	var order []string
	names := map[string][]string{}
	note := func(why, name string) {
		if _, ok := names[why]; !ok {
			order = append(order, why)
		}
		if name != "" {
			names[why] = append(names[why], name)
		}
	}
	for _, c := range changes {
		name := path.Base(c.Path)
		switch {
		case c.Path == base:
			note("unit changed", "")
		case strings.HasPrefix(c.Path, dropIns):
			note(map[string]string{"add": "drop-in added", "change": "drop-in changed", "remove": "drop-in removed"}[c.Action]+": "+name, "")
		case c.Action == "remove":
			note("removed", name)
		case c.Action == "add":
			note("added", name)
		default:
			note(": "+c.Reasons[0], name)
		}
	}
	for _, why := range order {
		list := strings.Join(names[why], ", ")
		switch {
		case list == "":
			r.Reasons = append(r.Reasons, why)
		case strings.HasPrefix(why, ": "):
			r.Reasons = append(r.Reasons, list+why)
		default:
			r.Reasons = append(r.Reasons, list+" "+why)
		}
	}
	if obs.Service != nil && obs.Service.ActiveState != "active" {
		r.Action = "start"
		r.Reasons = append(r.Reasons, "service is "+obs.Service.ActiveState)
	}
	if len(r.Reasons) == 0 {
		return nil
	}
	return r
}

// effectiveUnit is the base unit and its drop-ins in lexical order, each
// under a "# /path" line, as systemctl cat prints them.
func effectiveUnit(root, base string, files map[string][]byte) []string {
	var lines []string
	add := func(p string) {
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, "# "+path.Join("/", root, p))
		lines = append(lines, strings.Split(strings.TrimSuffix(string(files[p]), "\n"), "\n")...)
	}
	if _, ok := files[base]; !ok {
		return nil
	}
	add(base)
	var dropIns []string
	for p := range files {
		if strings.HasPrefix(p, base+".d/") && strings.HasSuffix(p, ".conf") {
			dropIns = append(dropIns, p)
		}
	}
	slices.Sort(dropIns)
	for _, p := range dropIns {
		add(p)
	}
	return lines
}

func unitDiff(nf NodeFiles, obs *NodeState, unit string) []string {
	base := nf.Target.Scope.UnitPath(unit)
	want := map[string][]byte{}
	for _, f := range nf.Files {
		if hasPrefixPath(f.Path, nf.Target.Scope.UnitDir()) {
			want[f.Path] = f.Content
		}
	}
	old := effectiveUnit(nf.Target.Root, base, obs.Units)
	if old == nil {
		return nil // a new unit: every file is listed as added
	}
	return lineDiff(old, effectiveUnit(nf.Target.Root, base, want))
}

// lineDiff lists the changed lines of a against b ("- " removed, "+ "
// added), each group under the "# /path" and "[Section]" lines it falls
// in, so the reader sees which file and section. Units are short: the
// quadratic longest-common-subsequence table is cheap.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	var file, section string
	shown := [2]string{}
	context := func(l string) {
		switch {
		case strings.HasPrefix(l, "# /"):
			file, section = l, ""
		case strings.HasPrefix(l, "["):
			section = l
		}
	}
	emit := func(mark, l string) {
		if l == "" {
			return // blank lines mean nothing to systemd
		}
		if shown[0] != file && l != file {
			out = append(out, "  "+file)
		}
		if shown[0] != file {
			shown = [2]string{file, ""}
		}
		if section != "" && shown[1] != section && l != section {
			out = append(out, "  "+section)
		}
		if section != "" {
			shown[1] = section
		}
		out = append(out, mark+" "+l)
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			context(a[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			context(a[i])
			emit("-", a[i])
			i++
		default:
			context(b[j])
			emit("+", b[j])
			j++
		}
	}
	return out
}

// Summary counts a plan's changes.
type Summary struct {
	Add      int `json:"add"`
	Change   int `json:"change"`
	Remove   int `json:"remove"`
	Restart  int `json:"restart"`
	Operator int `json:"operator"`
}

// Summarize counts the file changes, restarts and operator changes.
func Summarize(nodes []NodePlan, ops []OpChange) Summary {
	s := Summary{Operator: len(ops)}
	for _, n := range nodes {
		for _, c := range n.Changes {
			switch c.Action {
			case "add":
				s.Add++
			case "change":
				s.Change++
			case "remove":
				s.Remove++
			}
		}
		if n.Restart != nil {
			s.Restart++
		}
	}
	return s
}

// Empty says whether nothing would change.
func (s Summary) Empty() bool { return s == Summary{} }

func modeString(m fs.FileMode) string { return fmt.Sprintf("%04o", m.Perm()) }
