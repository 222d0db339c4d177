package membershipd

import "testing"

func TestNATSLogOpts(t *testing.T) {
	tests := []struct {
		debug, monitor                string
		noLog, dbg, trace, monitorOut bool
	}{
		{"", "", true, false, false, false},
		{"0", "0", true, false, false, false},
		{"", "1", true, false, false, true},
		{"", "true", true, false, false, true},
		{"1", "", false, true, false, true},
		{"1", "1", false, true, false, true},
		{"1", "0", false, true, false, true}, // debug implies the monitor
		{"trace", "", false, true, true, true},
		{"TRACE", "", false, true, true, true},
		{"bogus", "", true, false, false, false}, // unknown values are off, never on
	}
	for _, tt := range tests {
		noLog, dbg, trace, monitor := natsLogOpts(tt.debug, tt.monitor)
		if noLog != tt.noLog || dbg != tt.dbg || trace != tt.trace || monitor != tt.monitorOut {
			t.Errorf("natsLogOpts(%q, %q) = noLog %v debug %v trace %v monitor %v; want %v %v %v %v",
				tt.debug, tt.monitor, noLog, dbg, trace, monitor, tt.noLog, tt.dbg, tt.trace, tt.monitorOut)
		}
	}
}
