package units

import (
	"fmt"
	"syscall"
)

// systemdExit names the exit codes systemd itself uses when it could not
// set up a unit's process (systemd's exit-status.h): a start that fails
// with one never ran the service, and the name says which setting broke.
var systemdExit = map[int]string{
	200: "CHDIR: cannot change to WorkingDirectory=",
	203: "EXEC: cannot run ExecStart='s program",
	209: "STDOUT: cannot set up StandardOutput=",
	214: "SETSCHEDULER", 216: "GROUP: no such group", 217: "USER: no such user",
	218: "CAPABILITIES", 219: "CGROUP", 222: "STDERR",
	225: "NETWORK", 226: "NAMESPACE: cannot set up the sandbox's mounts (a path in ReadWritePaths=, StateDirectory= or a Protect*= setting)",
	227: "NO_NEW_PRIVILEGES", 228: "SECCOMP: cannot install SystemCallFilter=",
	230: "PERSONALITY", 232: "ADDRESS_FAMILIES", 233: "RUNTIME_DIRECTORY",
	235: "CHOWN", 237: "KEYRING", 238: "STATE_DIRECTORY: cannot create StateDirectory=",
	239: "CACHE_DIRECTORY", 240: "LOGS_DIRECTORY", 241: "CONFIGURATION_DIRECTORY",
	243: "CREDENTIALS: cannot load a LoadCredential= file (missing, or unreadable by the manager)",
	245: "BPF: cannot attach IPAddressAllow=/IPAddressDeny= filters",
}

// exitStatusText renders ExecMainCode/ExecMainStatus as systemctl status
// does ("status=243/CREDENTIALS", "signal=KILL").
func exitStatusText(code string, status int) string {
	switch code {
	case "killed", "dumped":
		return fmt.Sprintf("by signal %d (%s)", status, syscall.Signal(status))
	}
	if s, ok := systemdExit[status]; ok {
		return fmt.Sprintf("status=%d/%s", status, s)
	}
	return fmt.Sprintf("status=%d", status)
}
