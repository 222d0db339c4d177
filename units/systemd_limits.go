package units

import (
	"os"
)

// UserManagerNotEnforced lists the directives of the rendered units that
// a systemd user manager on this machine accepts but does not apply, so
// plan can name them before apply rather than leave them to be found.
// Both are cgroup programs or controllers that only a privileged manager
// may install: IP filtering is an eBPF program (needs root), and device
// access is the cgroup-v1 devices controller, never delegated to a user
// manager, or an eBPF program on cgroup v2 (needs root). Measured on
// systemd 252, hybrid cgroups, user manager of root: IPAddressDeny=
// blocked a loopback connection; DevicePolicy=closed did not stop a
// character device from opening (PrivateDevices= still hides /dev).
func UserManagerNotEnforced(root, unifiedCgroups bool) []string {
	var out []string
	if !root {
		out = append(out, "IPAddressAllow=", "IPAddressDeny=")
	}
	if !root || !unifiedCgroups {
		out = append(out, "DevicePolicy=")
	}
	return out
}

// LocalUserManagerNotEnforced is UserManagerNotEnforced for a user
// manager of this process's user on this machine.
func LocalUserManagerNotEnforced() []string {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return UserManagerNotEnforced(os.Geteuid() == 0, err == nil)
}
