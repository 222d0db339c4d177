package units

import (
	"fmt"
	"path"
)

// Scope is the systemd manager a unit belongs to.
type Scope string

const (
	// System units run under the system manager (PID 1), as a dynamic user.
	System Scope = "system"
	// User units run under a user's manager, as that user.
	User Scope = "user"
)

// ParseScope reads "system" or "user".
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case System, User:
		return Scope(s), nil
	}
	return "", fmt.Errorf("scope %q: want \"system\" or \"user\"", s)
}

// UnitDir is where units of the scope live, relative to a node's root
// (for user scope, the root is the user's home).
func (s Scope) UnitDir() string {
	if s == User {
		return ".config/systemd/user"
	}
	return "etc/systemd/system"
}

// ConfigDir is where unibus keeps a node's certificates and sealed
// secrets, relative to the node's root.
func (s Scope) ConfigDir() string {
	if s == User {
		return ".config/unibus"
	}
	return "etc/unibus"
}

// UnitPath is the path of a unit file relative to the node's root.
func (s Scope) UnitPath(unit string) string { return path.Join(s.UnitDir(), unit) }

// DropInPath is the path of a unit's drop-in relative to the node's root.
func (s Scope) DropInPath(unit, name string) string {
	return path.Join(s.UnitDir(), unit+".d", name)
}

// WantedBy is the target that pulls the service in at boot or login.
func (s Scope) WantedBy() string {
	if s == User {
		return "default.target"
	}
	return "multi-user.target"
}
