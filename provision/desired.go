package provision

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Desired is everything the spec says the nodes must have, as a value:
// plan compares it with what each node has, render writes it to a folder.
type Desired struct {
	Cluster string
	// Unit is the membershipd unit's name on every node.
	Unit  string
	Nodes []NodeFiles
}

// NodeFiles are one node's files, sorted by path.
type NodeFiles struct {
	Node   string
	Target Target
	// Unit is the membershipd unit's name on this node.
	Unit  string
	Files []File
}

// File is one file a node must have.
type File struct {
	// Path is relative to the node's root, slash-separated.
	Path    string
	Mode    fs.FileMode
	Content []byte
	// Secret files (private keys, sealed passwords) are shown as hidden
	// in a plan and are never world-readable.
	Secret bool
	// Pending, in a plan, says why the content is known only after apply
	// (a certificate to issue, a password to seal); Content is then nil.
	Pending string `json:",omitempty"`
}

// Pending lists the files of d whose content only apply can produce.
func (d *Desired) Pending() []string {
	var out []string
	for _, n := range d.Nodes {
		for _, f := range n.Files {
			if f.Pending != "" {
				out = append(out, n.Node+" "+f.Path+": "+f.Pending)
			}
		}
	}
	return out
}

// Node returns the named node's files, or nil.
func (d *Desired) Node(name string) *NodeFiles {
	for i := range d.Nodes {
		if d.Nodes[i].Node == name {
			return &d.Nodes[i]
		}
	}
	return nil
}

// File returns the file at path, or nil.
func (n *NodeFiles) File(p string) *File {
	i, ok := slices.BinarySearchFunc(n.Files, p, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return nil
	}
	return &n.Files[i]
}

func (n *NodeFiles) add(f File) {
	n.Files = append(n.Files, f)
}

func (n *NodeFiles) sort() {
	slices.SortFunc(n.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
}

// Equal says whether two desired states hold the same files, byte for byte
// and mode for mode.
func (d *Desired) Equal(o *Desired) bool {
	if d.Cluster != o.Cluster || d.Unit != o.Unit || len(d.Nodes) != len(o.Nodes) {
		return false
	}
	for i := range d.Nodes {
		a, b := d.Nodes[i], o.Nodes[i]
		if a.Node != b.Node || len(a.Files) != len(b.Files) {
			return false
		}
		for j := range a.Files {
			x, y := a.Files[j], b.Files[j]
			if x.Path != y.Path || x.Mode != y.Mode || x.Secret != y.Secret || x.Pending != y.Pending || !bytes.Equal(x.Content, y.Content) {
				return false
			}
		}
	}
	return true
}

// renderMarker marks a folder unibus render wrote, so that a second render
// may replace it while a folder of something else is never touched.
const renderMarker = ".unibus-render"

// ErrNotRenderDir is returned by [Desired.WriteTree] for a folder that is
// neither empty nor an earlier render's output.
var ErrNotRenderDir = fmt.Errorf("folder is not empty and not an earlier unibus render output")

// WriteTree writes every node's files to dir/<node>/<path> with their
// final modes (umask does not apply). A folder an earlier render wrote is
// replaced as a whole, so a file the spec no longer asks for disappears.
func (d *Desired) WriteTree(dir string) error {
	if p := d.Pending(); len(p) > 0 {
		return fmt.Errorf("not every file is known yet (%s)", strings.Join(p, "; "))
	}
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, renderMarker)); err != nil {
			return fmt.Errorf("%s: %w", dir, ErrNotRenderDir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	case err != nil && !os.IsNotExist(err):
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	marker := fmt.Sprintf("# Written by unibus render for cluster %s; the next render replaces this folder.\n", d.Cluster)
	if err := os.WriteFile(filepath.Join(dir, renderMarker), []byte(marker), 0o644); err != nil {
		return err
	}
	for _, n := range d.Nodes {
		for _, f := range n.Files {
			p := filepath.Join(dir, n.Node, filepath.FromSlash(path.Clean(f.Path)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
				return err
			}
			if err := os.Chmod(p, f.Mode); err != nil {
				return err
			}
		}
	}
	return nil
}
