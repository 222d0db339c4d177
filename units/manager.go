package units

import "context"

// Manager is a service manager that runs rendered units: systemd over
// D-Bus, or the built-in exec supervisor ([ExecManager]) where no systemd
// runs. Unit names are file names under the scope's unit directory, such
// as "membershipd-cluster.service".
type Manager interface {
	// Name is "exec" or "systemd".
	Name() string
	// Version says which manager and version runs the units; plan shows it.
	Version(ctx context.Context) (string, error)
	// Reload re-reads unit files and drop-ins (systemctl daemon-reload): a
	// start after it uses what is on disk now.
	Reload(ctx context.Context) error
	// Start starts the unit unless it is running, and waits until it is
	// up (READY=1 for Type=notify) or has failed. A failed start's error
	// holds the unit's result and the last lines of its log.
	Start(ctx context.Context, unit string) error
	// Restart stops the unit if it runs and starts it; it waits like Start.
	Restart(ctx context.Context, unit string) error
	// Stop sends KillSignal, waits TimeoutStopSec, then SIGKILLs what is
	// left of the unit's processes, and returns once they are gone.
	Stop(ctx context.Context, unit string) error
	// Enable makes the unit start at boot or login (exec: a marker only).
	Enable(ctx context.Context, unit string) error
	// Status reports the unit's state as systemctl show would.
	Status(ctx context.Context, unit string) (UnitStatus, error)
}

// UnitStatus is a unit's state, with systemd's property names and values.
type UnitStatus struct {
	Unit string `json:"unit"`
	// ActiveState is active, activating, deactivating, inactive or failed.
	ActiveState string `json:"active_state"`
	// SubState is the service's finer state: running, start-pre, start,
	// auto-restart, stop-sigterm, stop-sigkill, dead, failed.
	SubState string `json:"sub_state"`
	// Result is success, or why it stopped: exit-code, signal, timeout,
	// resources, start-limit-hit.
	Result       string `json:"result"`
	NRestarts    int    `json:"n_restarts"`
	MainPID      int    `json:"main_pid"`
	InvocationID string `json:"invocation_id"`
	// ExecMainCode is exited, killed or dumped for the last main process
	// that ended; ExecMainStatus its exit code or signal number.
	ExecMainCode   string `json:"exec_main_code,omitempty"`
	ExecMainStatus int    `json:"exec_main_status,omitempty"`
	// StatusText is the last STATUS= the service sent.
	StatusText string `json:"status_text,omitempty"`
	// NotEnforced lists the directives of the unit this manager accepted
	// but cannot apply (sandboxing, resource limits, ordering), as
	// "Name=". Empty under systemd.
	NotEnforced []string `json:"not_enforced,omitempty"`
	// NeedDaemonReload is true when the unit's files changed on disk
	// since they were last read.
	NeedDaemonReload bool `json:"need_daemon_reload,omitempty"`
}

// Active states, as systemd names them.
const (
	StateActive       = "active"
	StateActivating   = "activating"
	StateDeactivating = "deactivating"
	StateInactive     = "inactive"
	StateFailed       = "failed"
)
