package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/scripttest"
	"github.com/unibus/unibus/internal/testbin"
)

// TestRolloutUnderLoad rolls a change through a running three-node
// cluster (exec manager) while a publisher puts blobs (JetStream object
// store, R3) and a writer creates members (KV, R3) through every node at
// a steady rate: the rollout goes one node at a time with the meta leader
// last, the gate sees convergence before each next restart, and every
// acknowledged write is on every node afterwards. Once with leaders moved
// off first, once without; then a node SIGKILLed while the gate waits
// stops the rollout with the reason.
func TestRolloutUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a three-node cluster")
	}
	c := newLocalCluster(t)
	ops := c.clients(t)
	room, err := ops[0].CreateRoom(context.Background(), "load")
	if err != nil {
		t.Fatal(err)
	}
	monitor := false
	for _, move := range []bool{true, false} {
		monitor = !monitor
		load := startLoad(ops, room.ID)
		time.Sleep(500 * time.Millisecond)
		args := []string{"-var", "monitor=" + strconv.FormatBool(monitor)}
		if !move {
			args = append(args, "-no-move-leaders")
		}
		lines, err := c.apply(t, nil, args...)
		if err != nil {
			t.Fatalf("rollout: %v\n%s", err, joinLines(lines))
		}
		time.Sleep(time.Second)
		load.stop()
		r := rolloutOf(t, lines, move)
		t.Logf("move leaders %v: rollout %s for 3 nodes, %s of it restart+reconvergence, overhead %s (%s a node); longest stall: publish %s, write %s; %d blobs and %d members acknowledged",
			move, r.total.Round(time.Millisecond), r.perNode.Round(time.Millisecond), (r.total - r.perNode).Round(time.Millisecond),
			((r.total - r.perNode) / 3).Round(time.Millisecond), load.blobs.stall().Round(time.Millisecond), load.members.stall().Round(time.Millisecond),
			len(load.blobs.acked), len(load.members.acked))
		load.check(t, ops, room.ID)
	}

	// A node killed while the gate waits after a restart stops the rollout.
	monitor = !monitor
	killed := ""
	lines, err := c.apply(t, func(line string) {
		if killed == "" && strings.Contains(line, "gate: ") {
			m := regexp.MustCompile(`gate: (n\d):`).FindStringSubmatch(line)
			for _, n := range []string{"n1", "n2", "n3"} {
				if n != m[1] {
					killed = n
					c.kill(t, n)
					return
				}
			}
		}
	}, "-var", "monitor="+strconv.FormatBool(monitor))
	out := joinLines(lines)
	if err == nil || !strings.Contains(out, killed+"'s process") || !strings.Contains(out, "ended while the gate waited") || !strings.Contains(out, "not rolled out yet, untouched") {
		t.Fatalf("apply with %s killed during the gate: %v\n%s", killed, err, out)
	}
}

// localCluster is testdata/bench/cluster.hcl under the exec manager, as
// apply brought it up, with the unibus binary that drives it.
type localCluster struct {
	unibus, spec, roots, identity string
	ports, vars, env              []string
}

func newLocalCluster(t *testing.T) *localCluster {
	unibus, err := testbin.Unibus()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := testbin.Membershipd()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	c := &localCluster{unibus: unibus, spec: filepath.Join(work, "spec"), roots: filepath.Join(work, "roots"),
		identity: filepath.Join(work, "identity")}
	c.env = append(os.Environ(), "UNIBUS_IDENTITY="+c.identity)
	os.MkdirAll(c.spec, 0o755)
	data, err := os.ReadFile("testdata/bench/cluster.hcl")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.spec, "cluster.hcl"), data, 0o644)
	for range 12 {
		c.ports = append(c.ports, strconv.Itoa(scripttest.Port(t)))
	}
	c.vars = []string{"-var", "ports=" + strings.Join(c.ports, ","), "-var", "binary=" + bin, "-var", "roots=" + c.roots, "-var", "manager=exec"}
	if lines, err := c.apply(t, nil); err != nil {
		t.Fatalf("first apply: %v\n%s", err, joinLines(lines))
	}
	t.Cleanup(func() { exec.Command(c.unibus, append(append([]string{"down"}, c.vars...), c.spec)...).Run() })
	return c
}

// apply runs unibus apply -auto-approve with extra flags, calling each
// (time-stamped) line of its output to see as it comes.
func (c *localCluster) apply(t *testing.T, see func(string), extra ...string) ([]stampedLine, error) {
	args := append(append(append([]string{"apply", "-auto-approve"}, c.vars...), extra...), c.spec)
	cmd := exec.Command(c.unibus, args...)
	cmd.Env = c.env
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var lines []stampedLine
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		l := stampedLine{at: time.Now(), text: sc.Text()}
		lines = append(lines, l)
		if see != nil {
			see(l.text)
		}
	}
	return lines, cmd.Wait()
}

func (c *localCluster) clients(t *testing.T) []*client.Client {
	op, err := client.LoadIdentity(c.identity)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := client.WithServerCA(filepath.Join(c.spec, ".unibus", "pki", "client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*client.Client
	for _, i := range []int{0, 4, 8} {
		out = append(out, client.New("https://127.0.0.1:"+c.ports[i], op, ca))
	}
	return out
}

// kill SIGKILLs node n's membershipd, as the exec manager recorded it.
func (c *localCluster) kill(t *testing.T, n string) {
	p := filepath.Join(c.roots, n, ".local", "state", "unibus-exec", "membershipd-"+n+".service", "status.json")
	var st struct {
		MainPID int `json:"main_pid"`
	}
	data, err := os.ReadFile(p)
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil || st.MainPID == 0 {
		t.Errorf("no main pid for %s in %s: %v", n, p, err)
		return
	}
	syscall.Kill(st.MainPID, syscall.SIGKILL)
}

type stampedLine struct {
	at   time.Time
	text string
}

func joinLines(ls []stampedLine) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// rolloutTimes is what the apply output says of a rollout.
type rolloutTimes struct {
	total, perNode time.Duration
}

// rolloutOf checks the order (one node at a time: each restart after the
// previous node converged, every node once, the meta leader last when
// leaders were moved) and times it: total from the first restart line to
// the last converged line, perNode the sum of each node's restart to its
// converged line.
func rolloutOf(t *testing.T, lines []stampedLine, move bool) rolloutTimes {
	restartRe := regexp.MustCompile(`^unibus: (n\d): restart `)
	convergedRe := regexp.MustCompile(`^unibus: (n\d): converged$`)
	metaRe := regexp.MustCompile(`^unibus: (n\d): \d+ leadership\(s\) moved off .*meta leader: (true|false)`)
	var r rolloutTimes
	var first, started time.Time
	current := ""
	seen := map[string]bool{}
	metaLeader, last := "", ""
	for _, l := range lines {
		if m := metaRe.FindStringSubmatch(l.text); m != nil && m[2] == "true" {
			metaLeader = m[1]
		}
		if m := restartRe.FindStringSubmatch(l.text); m != nil {
			if current != "" {
				t.Fatalf("%s restarted while %s had not converged:\n%s", m[1], current, joinLines(lines))
			}
			if seen[m[1]] {
				t.Fatalf("%s restarted twice:\n%s", m[1], joinLines(lines))
			}
			current, started, seen[m[1]], last = m[1], l.at, true, m[1]
			if first.IsZero() {
				first = l.at
			}
		}
		if m := convergedRe.FindStringSubmatch(l.text); m != nil && m[1] == current {
			r.perNode += l.at.Sub(started)
			r.total = l.at.Sub(first)
			current = ""
		}
	}
	if len(seen) != 3 || current != "" {
		t.Fatalf("rollout restarted %v, %q not converged:\n%s", seen, current, joinLines(lines))
	}
	if move && metaLeader != last {
		t.Fatalf("the meta leader %q restarted before the last node %s:\n%s", metaLeader, last, joinLines(lines))
	}
	return r
}

// load is a publisher of blobs and a writer of members, each through the
// three nodes in turn at a steady rate, retrying what was not
// acknowledged.
type load struct {
	blobs, members *stream
	cancel         context.CancelFunc
	wg             sync.WaitGroup
}

type stream struct {
	mu      sync.Mutex
	acked   []string
	times   []time.Time
	payload map[string][]byte
}

func (s *stream) ack(id string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked = append(s.acked, id)
	s.times = append(s.times, time.Now())
	if data != nil {
		s.payload[id] = data
	}
}

// stall is the longest time between two acknowledgements.
func (s *stream) stall() time.Duration {
	var worst time.Duration
	for i := 1; i < len(s.times); i++ {
		worst = max(worst, s.times[i].Sub(s.times[i-1]))
	}
	return worst
}

func startLoad(cs []*client.Client, room string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{blobs: &stream{payload: map[string][]byte{}}, members: &stream{payload: map[string][]byte{}}, cancel: cancel}
	tag := time.Now().UnixNano()
	l.wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			data := []byte(fmt.Sprintf("blob %d of run %d", i, tag))
			retry(ctx, func(try int) error {
				id, err := cs[(i+try)%3].PutBlob(ctx, room, data)
				if err == nil {
					l.blobs.ack(id, data)
				}
				return err
			})
			time.Sleep(50 * time.Millisecond)
		}
	})
	l.wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			id, _ := client.GenerateIdentity(fmt.Sprintf("w%d-%d", tag%100000, i))
			m := client.Member{Handle: id.Handle, Role: "member", SignPub: id.SignPub(), AgeRecipient: id.Recipient()}
			retry(ctx, func(try int) error {
				_, err := cs[(i+try)%3].CreateMember(ctx, m)
				var apiErr *client.APIError
				if err == nil || try > 0 && errors.As(err, &apiErr) && apiErr.Code == "exists" {
					l.members.ack(m.Handle, nil)
					return nil
				}
				return err
			})
			time.Sleep(50 * time.Millisecond)
		}
	})
	return l
}

// retry calls f until it succeeds or ctx ends, on the next node each time.
func retry(ctx context.Context, f func(try int) error) {
	for try := 0; ctx.Err() == nil; try++ {
		if f(try) == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

// check: every acknowledged blob and member is there, through every node.
func (l *load) check(t *testing.T, cs []*client.Client, room string) {
	ctx := context.Background()
	if len(l.blobs.acked) < 50 || len(l.members.acked) < 50 {
		t.Fatalf("only %d blobs and %d members acknowledged: the load did not run", len(l.blobs.acked), len(l.members.acked))
	}
	for i, c := range cs {
		for _, id := range l.blobs.acked {
			data, err := c.Blob(ctx, room, id)
			if err != nil || !bytes.Equal(data, l.blobs.payload[id]) {
				t.Fatalf("acknowledged blob %s through node %d: %v", id, i+1, err)
			}
		}
		for _, h := range l.members.acked {
			if _, err := c.Member(ctx, h); err != nil {
				t.Fatalf("acknowledged member %s through node %d: %v", h, i+1, err)
			}
		}
	}
}
