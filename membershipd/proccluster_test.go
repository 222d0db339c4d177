package membershipd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/testbin"
)

// procCluster is three real membershipd processes on loopback: route TLS
// with certificates from package pki, a cluster password file, --bus-auth
// enforce, --kv-replicas 3. kill is SIGKILL, so a restarted node recovers
// from the store exactly as a crash left it: nothing flushed, no goodbye.
type procCluster struct {
	t     testing.TB
	bin   string
	nodes []*procNode
}

// procNode is one node: its flags and ports stay across restarts (peers
// dial the route port, clients the others).
type procNode struct {
	name                        string
	stateDir                    string
	httpPort, natsPort, monPort int
	args                        []string
	log                         *lockedBuffer

	cmd    *exec.Cmd     // nil while down
	exited chan struct{} // closed when cmd has exited
}

// newProcCluster starts three nodes and waits until every one is ready.
// With admin set, node 1 is bootstrapped with it (the first admin) before
// the cluster first forms.
func newProcCluster(t testing.TB, admin *client.Identity) *procCluster {
	t.Helper()
	bin, err := testbin.Membershipd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const n = 3
	pkiDir, pass := clusterFiles(t, dir, n)
	ports := freePorts(t, 4*n) // per node: HTTP, NATS, monitor, route
	routePorts := ports[3*n:]
	pc := &procCluster{t: t, bin: bin}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		nd := &procNode{name: name, stateDir: filepath.Join(dir, name), log: &lockedBuffer{},
			httpPort: ports[3*i], natsPort: ports[3*i+1], monPort: ports[3*i+2]}
		node := func(f string) string { return filepath.Join(string(pkiDir), "nodes", name, f) }
		nd.args = []string{
			"--node-name", name, "--state-dir", nd.stateDir,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", nd.httpPort),
			"--nats-addr", fmt.Sprintf("127.0.0.1:%d", nd.natsPort),
			"--monitor-port", strconv.Itoa(nd.monPort),
			"--bus-auth", "enforce", "--kv-replicas", "3",
			"--cluster-name", "test", "--cluster-addr", fmt.Sprintf("127.0.0.1:%d", routePorts[i]),
			"--routes", strings.Join(routesFor(i, routePorts), ","),
			"--route-tls-cert", node("route.crt"), "--route-tls-key", node("route.key"),
			"--route-tls-ca", filepath.Join(string(pkiDir), "route-ca.crt"),
			"--cluster-pass-file", pass,
		}
		pc.nodes = append(pc.nodes, nd)
	}
	if admin != nil {
		out, err := exec.Command(bin, "bootstrap", "--state-dir", pc.nodes[0].stateDir, "--handle", admin.Handle,
			"--sign-pub", admin.SignPub(), "--age-recipient", admin.Recipient(), "--vouch", selfVouch(t, admin)).CombinedOutput()
		if err != nil {
			t.Fatalf("membershipd bootstrap: %v\n%s", err, out)
		}
	}
	// Registered before any process starts, so a t.Fatal anywhere after
	// still leaves no process behind.
	t.Cleanup(pc.cleanup)
	for i := range pc.nodes {
		pc.start(i)
	}
	for i := range pc.nodes {
		pc.waitReady(i, 60*time.Second)
	}
	return pc
}

// on is the same cluster for a subtest: its helpers fail t, not the test
// that made the cluster (which still cleans it up).
func (pc *procCluster) on(t testing.TB) *procCluster {
	c := *pc
	c.t = t
	return &c
}

// start runs node i on its state dir. Pdeathsig kills the child should the
// test binary itself die (a panic, the test timeout) before its cleanup.
func (pc *procCluster) start(i int) {
	pc.t.Helper()
	nd := pc.nodes[i]
	if nd.cmd != nil {
		pc.t.Fatalf("start %s: already running", nd.name)
	}
	pc.freshClientPorts(nd)
	fmt.Fprintf(nd.log, "--- %s start %s ---\n", nd.name, time.Now().Format(time.TimeOnly))
	cmd := exec.Command(pc.bin, nd.args...)
	// The monitor is loopback-only; the tests read stream leaders and
	// replica state from it.
	cmd.Env = append(os.Environ(), "UNIBUS_NATS_MONITOR=1")
	cmd.Stdout, cmd.Stderr = nd.log, nd.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pc.t.Fatalf("start %s: %v", nd.name, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(nd.log, "--- %s exited: %v ---\n", nd.name, err)
		close(exited)
	}()
	nd.cmd, nd.exited = cmd, exited
}

// freshClientPorts gives node nd new HTTP, NATS and monitor ports if one
// of its own was taken while it was down (by another test of this machine
// picking a free port): only the route port, which the peers dial, must
// stay.
func (pc *procCluster) freshClientPorts(nd *procNode) {
	for _, p := range []int{nd.httpPort, nd.natsPort, nd.monPort} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			continue
		}
		ports := freePorts(pc.t, 3)
		set := map[string]string{
			"--http-addr": fmt.Sprintf("127.0.0.1:%d", ports[0]), "--nats-addr": fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"--monitor-port": strconv.Itoa(ports[2]),
		}
		for i := 0; i+1 < len(nd.args); i++ {
			if v, ok := set[nd.args[i]]; ok {
				nd.args[i+1] = v
			}
		}
		nd.httpPort, nd.natsPort, nd.monPort = ports[0], ports[1], ports[2]
		fmt.Fprintf(nd.log, "--- %s: port %d taken while it was down; client ports now %v ---\n", nd.name, p, ports)
		return
	}
}

// kill sends SIGKILL to each node given, all before waiting for any (so
// two nodes die at the same moment), and waits until they are gone.
func (pc *procCluster) kill(is ...int) {
	pc.t.Helper()
	for _, i := range is {
		nd := pc.nodes[i]
		if nd.cmd == nil {
			pc.t.Fatalf("kill %s: not running", nd.name)
		}
		if err := nd.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			pc.t.Fatalf("kill %s: %v", nd.name, err)
		}
	}
	for _, i := range is {
		nd := pc.nodes[i]
		<-nd.exited
		if ws, ok := nd.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			pc.t.Errorf("%s ended by %v before the SIGKILL", nd.name, nd.cmd.ProcessState)
		}
		nd.cmd = nil
	}
}

// restart starts a killed node again on the state dir the kill left.
func (pc *procCluster) restart(i int) {
	pc.t.Helper()
	pc.start(i)
	pc.waitReady(i, 60*time.Second)
}

// readyz is node i's /readyz answer: status and reason.
func (pc *procCluster) readyz(i int) (int, string) {
	var e apiError
	code := getJSON(pc.t, pc.url(i, "/readyz"), &e)
	return code, e.Error
}

func (pc *procCluster) running(i int) bool { return pc.nodes[i].cmd != nil }

func (pc *procCluster) url(i int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", pc.nodes[i].httpPort, path)
}

func (pc *procCluster) natsURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", pc.nodes[i].natsPort)
}

func (pc *procCluster) client(i int, id *client.Identity) *client.Client {
	return client.New(pc.url(i, ""), id)
}

// waitReady waits for node i's /readyz 200, and stops at once if the
// process exits instead.
func (pc *procCluster) waitReady(i int, timeout time.Duration) {
	pc.t.Helper()
	nd := pc.nodes[i]
	waitFor(pc.t, nd.name+" /readyz 200", timeout, func() bool {
		select {
		case <-nd.exited:
			pc.t.Fatalf("%s exited while starting", nd.name)
		default:
		}
		return getJSONQuiet(pc.url(i, "/readyz")) == 200
	})
}

// waitConverged waits until every running node answers /readyz 200 and its
// /healthz cluster block says converged, with routes to every other
// running node and every follower current, in two samples in a row (one
// good sample can come just before a leader change). It returns when the
// first sample of that run was taken.
func (pc *procCluster) waitConverged(timeout time.Duration) time.Time {
	pc.t.Helper()
	var first time.Time
	good := 0
	waitFor(pc.t, "the cluster to converge", timeout, func() bool {
		at := time.Now()
		if !pc.converged() {
			good = 0
			return false
		}
		if good++; good == 1 {
			first = at
		}
		return good >= 2
	})
	return first
}

func (pc *procCluster) converged() bool {
	up := 0
	for i := range pc.nodes {
		if pc.running(i) {
			up++
		}
	}
	for i := range pc.nodes {
		if !pc.running(i) {
			continue
		}
		if getJSONQuiet(pc.url(i, "/readyz")) != 200 {
			return false
		}
		h, err := pc.health(i)
		if err != nil {
			return false
		}
		c := h.NATS.Cluster
		if c == nil || !c.Converged || c.Peers != up-1 || c.FollowersCurrent != c.FollowersExpected || c.ReplicatedStreams == 0 {
			return false
		}
	}
	return true
}

func (pc *procCluster) health(i int) (health, error) {
	var h health
	resp, err := http.Get(pc.url(i, "/healthz"))
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, err
	}
	if h.NATS == nil {
		return h, fmt.Errorf("%s /healthz has no nats block", pc.nodes[i].name)
	}
	return h, nil
}

// streams is node i's own JetStream view from its monitor (/jsz): each
// stream it holds a replica of, with its local state, and, where it leads,
// what it knows of its followers.
func (pc *procCluster) streams(i int) (map[string]server.StreamDetail, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=true&streams=true", pc.nodes[i].monPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var jsz server.JSInfo
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return nil, err
	}
	out := map[string]server.StreamDetail{}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			out[s.Name] = s
		}
	}
	return out, nil
}

// views is every running node's own /jsz view of its streams.
func (pc *procCluster) views() (map[int]map[string]server.StreamDetail, error) {
	views := map[int]map[string]server.StreamDetail{}
	for j := range pc.nodes {
		if pc.running(j) {
			v, err := pc.streams(j)
			if err != nil {
				return nil, err
			}
			views[j] = v
		}
	}
	return views, nil
}

// leaderOf is the node that leads stream: the one whose own view says it
// leads and lists the followers it tracks. A node's view of another's
// leadership can be stale, and a node just restarted names itself leader
// of every stream, with no followers, until it hears from the cluster.
func (pc *procCluster) leaderOf(views map[int]map[string]server.StreamDetail, stream string) (int, error) {
	leader := -1
	for j, v := range views {
		c := v[stream].Cluster
		if c == nil || c.Leader != pc.nodes[j].name || len(c.Replicas) == 0 {
			continue
		}
		if leader >= 0 {
			return -1, fmt.Errorf("%s: both %s and %s lead it", stream, pc.nodes[leader].name, pc.nodes[j].name)
		}
		leader = j
	}
	if leader < 0 {
		return -1, fmt.Errorf("%s: no leader with followers", stream)
	}
	return leader, nil
}

// streamLeader is the node that leads stream now.
func (pc *procCluster) streamLeader(stream string) (int, error) {
	views, err := pc.views()
	if err != nil {
		return -1, err
	}
	return pc.leaderOf(views, stream)
}

// replicasCaughtUp says whether node i holds a replica of every stream
// the cluster has, each with what the stream's leader holds (the same last
// sequence and message count), and counted current by that leader. It is
// the node's own store that is compared, not a count in /healthz.
func (pc *procCluster) replicasCaughtUp(i int) error {
	views, err := pc.views()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, v := range views {
		for name := range v {
			names[name] = true
		}
	}
	if len(names) == 0 {
		return errors.New("no node holds a stream")
	}
	me := pc.nodes[i].name
	for name := range names {
		s, ok := views[i][name]
		if !ok {
			return fmt.Errorf("%s holds no replica of %s", me, name)
		}
		l, err := pc.leaderOf(views, name)
		if err != nil {
			return err
		}
		if l == i {
			continue // the leader's copy is the reference
		}
		ls := views[l][name]
		if ls.State.LastSeq != s.State.LastSeq || ls.State.Msgs != s.State.Msgs {
			return fmt.Errorf("%s: %s at seq %d (%d msgs), its leader %s at %d (%d msgs)",
				me, name, s.State.LastSeq, s.State.Msgs, pc.nodes[l].name, ls.State.LastSeq, ls.State.Msgs)
		}
		current := false
		for _, r := range ls.Cluster.Replicas {
			current = current || r.Name == me && r.Current
		}
		if !current {
			return fmt.Errorf("%s: the leader of %s does not count it current", me, name)
		}
	}
	return nil
}

// cleanup kills every node that still runs, then, if the test failed,
// puts each node's log in the test log.
func (pc *procCluster) cleanup() {
	for _, nd := range pc.nodes {
		if nd.cmd != nil {
			nd.cmd.Process.Signal(syscall.SIGKILL)
			<-nd.exited
			nd.cmd = nil
		}
	}
	if pc.t.Failed() {
		for _, nd := range pc.nodes {
			pc.t.Logf("%s log:\n%s", nd.name, nd.log.tail(64<<10))
		}
	}
}

// tail is the last n bytes, cut at a line start.
func (l *lockedBuffer) tail(n int) string {
	s := l.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[...]\n" + s
}

// TestMain removes the binaries testbin built.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}
