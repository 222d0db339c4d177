// Package units is the systemd side of unibus provisioning: unit files and
// drop-ins as values, their deterministic rendering, where they are
// installed for each scope, and checks with systemd's own tools.
//
// It is for package provision, which fills [File] values from the embedded
// templates and the cluster spec, and for tests and plan, which compare and
// verify what was rendered.
//
// # Files as data
//
// A [File] is a unit or a drop-in: an optional comment header and sections
// of options, in the order they were given. [File.Bytes] validates every
// section, option name and value (no newline or control character, no
// trailing backslash that would continue a line) and always renders the same
// bytes for the same value; [Parse] reads a file back through go-systemd's
// deserializer, so a rendered file round-trips.
//
// # Values
//
// systemd expands specifiers (%) in most settings and variables ($) in
// command lines. Values that come from a spec go through [Escape] or
// [ExecArg]; only the renderer's own specifiers (%S, %d) stay live.
//
// # Scopes
//
// [Scope] says where a unit lives relative to a node's root: system units
// under etc/systemd/system, user units under .config/systemd/user.
//
// # Service managers
//
// [Manager] is what apply drives: systemd, or [ExecManager] where no
// systemd runs. The exec manager reads the same unit files and drop-ins
// with systemd's merge rules ([LoadExecUnit], [UnitFiles]) and runs each
// started unit under a detached supervisor process ("unibus
// exec-supervise", [SuperviseMain]) that outlives the command that
// started it. Under a node's root it maps %S to .local/state (user
// scope) or var/lib (system scope) and keeps its own state in
// [ManagerDir]: per unit the loaded unit, status.json, the log and, while
// the unit runs, the credentials folder behind %d. Sandboxing it cannot
// apply is listed as not enforced; a directive it does not know is
// refused with file:line.
//
// # Checks
//
// [Verify] runs systemd-analyze verify and [Security] runs
// systemd-analyze security --offline=true on rendered units, in a scratch
// root so that neither needs systemd as PID 1 or the daemon installed.
package units
