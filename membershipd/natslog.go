package membershipd

import (
	"fmt"
	"log/slog"
	"strings"
)

// natsLogOpts decides, from UNIBUS_NATS_DEBUG and UNIBUS_NATS_MONITOR, how
// chatty the embedded nats-server is and whether its monitor endpoint opens.
//
//   - neither set: quiet log, no monitor. This is production.
//   - UNIBUS_NATS_MONITOR=1: the monitor opens on loopback, the log stays quiet.
//   - UNIBUS_NATS_DEBUG=1: verbose log, and the monitor, which a debugging
//     operator wants next.
//   - UNIBUS_NATS_DEBUG=trace: as debug, plus protocol tracing, which logs
//     message payloads and so is never implied by anything else.
//
// "Quiet" (noLog) means nats-server's notices are dropped; its warnings and
// errors still reach the daemon's log, since a route or disk failure must be
// visible in production.
func natsLogOpts(debugEnv, monitorEnv string) (noLog, debug, trace, monitor bool) {
	switch strings.ToLower(strings.TrimSpace(debugEnv)) {
	case "trace":
		return false, true, true, true
	case "1", "true", "yes", "on":
		return false, true, false, true
	}
	switch strings.ToLower(strings.TrimSpace(monitorEnv)) {
	case "1", "true", "yes", "on":
		return true, false, false, true
	}
	return true, false, false, false
}

// natsLogger adapts nats-server's Logger interface to slog, so the embedded
// server's lines share the daemon's format (text or JSON) and destination.
type natsLogger struct {
	log   *slog.Logger
	quiet bool // drop notices: see natsLogOpts
}

func (l natsLogger) Noticef(format string, v ...any) {
	if !l.quiet {
		l.log.Info(fmt.Sprintf(format, v...))
	}
}
func (l natsLogger) Warnf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }

// Fatalf is logged as an error instead of exiting: the daemon owns the one
// shutdown path, and a failed start surfaces through readiness checks.
func (l natsLogger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "trace", true)
}
