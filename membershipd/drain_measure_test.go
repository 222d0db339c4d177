package membershipd

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
)

// TestDrainMeasure reports numbers, asserts nothing timed: how long a drain
// of a node of a three-node cluster with the default buckets takes, and
// the longest gap between successful control-plane writes through another
// node while node 1 (leading every stream and the meta group) restarts:
// drained first, plainly (Shutdown's lame duck moves leaders without
// waiting for new ones), and stopped at once (no leader moved). It runs
// with UNIBUS_MEASURE=1.
func TestDrainMeasure(t *testing.T) {
	if os.Getenv("UNIBUS_MEASURE") == "" {
		t.Skip("measurement: set UNIBUS_MEASURE=1")
	}
	tc := newDrainCluster(t)
	ctx := context.Background()
	var took []time.Duration
	for i := range 7 {
		tc.waitReady(60 * time.Second)
		x := i % 3
		start := time.Now()
		rep, err := tc.clientOn(x, tc.alice).Drain(ctx, client.DrainOptions{})
		if err != nil {
			t.Fatalf("drain n%d: %v", x+1, err)
		}
		took = append(took, time.Since(start))
		t.Logf("drain n%d: %d leaderships moved, %d ms on the server, %s end to end", x+1, len(rep.Moved), rep.ElapsedMS, time.Since(start).Round(time.Millisecond))
	}
	slices.Sort(took)
	t.Logf("drain: median %s, min %s, max %s over %d", took[len(took)/2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))

	var eventsStart time.Time
	restarts := map[string]func(){
		"no restart (baseline, 3s)": func() { time.Sleep(3 * time.Second) },
		"drain, then restart": func() {
			t0 := time.Now()
			if _, err := tc.clientOn(0, tc.alice).Drain(ctx, client.DrainOptions{}); err != nil {
				t.Fatalf("drain: %v", err)
			}
			t1 := time.Now()
			tc.nodes[0].Shutdown()
			t2 := time.Now()
			tc.start(0)
			t.Logf("events: drain %s, stopped %s, started %s", t1.Sub(t0), t2.Sub(t0), time.Since(t0))
			eventsStart = t0
		},
		"plain restart (lame duck)": func() {
			tc.nodes[0].Shutdown()
			tc.start(0)
		},
		"stop at once and start": func() {
			tc.halt(0)
			tc.start(0)
		},
	}
	for _, name := range []string{"no restart (baseline, 3s)", "drain, then restart", "plain restart (lame duck)", "stop at once and start"} {
		var gaps []time.Duration
		for range 3 {
			tc.waitReady(60 * time.Second)
			tc.pullLeadersTo(0)
			tc.waitReady(60 * time.Second)
			w := startWriter(tc.clientOn(1, tc.alice))
			waitFor(t, "writes before", 10*time.Second, func() bool { return w.writes() >= 5 })
			restarts[name]()
			tc.waitReady(60 * time.Second)
			n := w.writes()
			waitFor(t, "writes after", 10*time.Second, func() bool { return w.writes() >= n+5 })
			w.halt()
			gaps = append(gaps, w.longestGap())
			t.Logf("%s: longest write gap %s, %d writes, %d failed", name, w.longestGap().Round(time.Millisecond), len(w.okAt), len(w.fails))
			if !eventsStart.IsZero() {
				t.Logf("gap began %s after the drain started", w.gapAt().Sub(eventsStart))
				eventsStart = time.Time{}
			}
		}
		slices.Sort(gaps)
		t.Logf("%s: longest write gap median %s, max %s", name, gaps[1].Round(time.Millisecond), gaps[2].Round(time.Millisecond))
	}
}
