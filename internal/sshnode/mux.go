package sshnode

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Connection sharing, as OpenSSH's ControlMaster/ControlPersist: most of
// a plan over SSH is sshd's fixed cost of a new connection (TCP, its
// re-exec per connection, key exchange, publickey authentication: about
// 40 ms of 55 on loopback), which no client change removes within one
// process. So with [Pool.Persist] a run's connection is also made by a
// mux, a detached process that keeps it for the next runs: it serves an
// SSH server of its own on a unix socket and carries each channel a run
// opens there to a channel of the same type on the node's sshd. A run
// speaks to the mux with the same x/crypto client as to sshd, so nothing
// above the connection changes.
//
// Who may use a mux: the socket is in a folder only the user can enter
// (see [muxDir]); the mux serves only connections whose peer has its own
// uid (SO_PEERCRED); and a run talks only to the process holding the host
// key pinned beside the socket, so a socket left by something else is
// refused. The mux dials the node itself with the run's settings, and
// checks the host key against known_hosts as the run did, never
// accepting a new one.

// muxSettings is what a run hands the mux it starts, on its stdin: argv
// is world-readable in /proc, stdin is not.
type muxSettings struct {
	Target     string        `json:"target"`
	Sock       string        `json:"sock"`
	Persist    time.Duration `json:"persist"`
	KeyFile    string        `json:"key_file,omitempty"`
	KnownHosts string        `json:"known_hosts"`
	Timeout    time.Duration `json:"timeout"`
}

// muxKeepalive is how often the mux asks sshd whether the connection
// still works, so a connection that died quietly ends the mux instead of
// the next run.
const muxKeepalive = 30 * time.Second

// dialMux connects to target's mux, if one serves it. It returns nil
// and no error when there is none (a stale socket is removed), and an
// error when something is there that must not be trusted; either way the
// caller dials directly.
func dialMux(ctx context.Context, m muxFiles, name string, t Target, o Options) (*Client, error) {
	fi, err := os.Lstat(m.sock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Type() != fs.ModeSocket || fileOwner(fi) != os.Getuid() {
		return nil, fmt.Errorf("%s is not a socket of yours (%s, owner uid %d): remove it", m.sock, fi.Mode(), fileOwner(fi))
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "unix", m.sock)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Its mux is gone (killed, or the machine slept through
			// its exit).
			m.removeStale()
			return nil, nil
		}
		return nil, fmt.Errorf("cannot connect to the mux at %s: %v", m.sock, unwrapOp(err))
	}
	if uid, err := peerUID(conn); err != nil || uid != os.Getuid() {
		conn.Close()
		return nil, fmt.Errorf("the process serving %s is not yours (uid %d, %v): remove the socket", m.sock, uid, err)
	}
	pin, err := m.readPin()
	if err != nil {
		conn.Close()
		return nil, err
	}
	deadline, _ := dctx.Deadline()
	conn.SetDeadline(deadline)
	cfg := &ssh.ClientConfig{
		User:              t.User,
		HostKeyAlgorithms: []string{pin.Type()},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if string(key.Marshal()) != string(pin.Marshal()) {
				return fmt.Errorf("the process serving %s is not the mux that pinned its key in %s (it offers %s): remove both files", m.sock, m.pin, ssh.FingerprintSHA256(key))
			}
			return nil
		},
		Timeout: o.Timeout,
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, "unibus-mux", cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("the mux at %s: %v", m.sock, err)
	}
	conn.SetDeadline(time.Time{})
	return newClient(name, t, ssh.NewClient(cc, chans, reqs), o), nil
}

// startMux starts target's mux for the next runs, detached: a session of
// its own, no terminal, its settings on stdin. It does not wait for the
// mux to serve (the run that starts it has its own connection); one that
// finds another mux serving the target exits at once.
func startMux(argv []string, m muxFiles, target string, persist time.Duration, o Options) error {
	if len(argv) == 0 {
		return errors.New("no mux command")
	}
	b, err := json.Marshal(muxSettings{Target: target, Sock: m.sock, Persist: persist,
		KeyFile: absPath(o.KeyFile), KnownHosts: absPath(o.KnownHosts), Timeout: o.Timeout})
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Dir = r, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("cannot start the mux %s: %w", argv[0], err)
	}
	// Far less than a pipe holds: the write does not wait for the mux.
	_, err = w.Write(b)
	w.Close()
	// Reap it if this process outlives it; otherwise init adopts it.
	go cmd.Wait()
	return err
}

// MuxMain is the mux process (unibus ssh-mux): it reads its settings from
// stdin, connects to the node and serves the connection on its socket
// until no run has used it for the persist duration, or the connection
// to the node ends. A mux that finds another serving the same target
// returns at once, without error.
func MuxMain(stdin io.Reader) error {
	var s muxSettings
	if err := json.NewDecoder(stdin).Decode(&s); err != nil {
		return fmt.Errorf("ssh-mux: settings on stdin: %w", err)
	}
	t, err := ParseTarget(s.Target)
	if err != nil {
		return err
	}
	o, err := Options{KeyFile: s.KeyFile, KnownHosts: s.KnownHosts, Timeout: s.Timeout}.withDefaults()
	if err != nil {
		return err
	}
	m, err := muxFilesFor(s.Target, o)
	if err != nil {
		return err
	}
	if m.sock != s.Sock {
		// The run and the mux disagree on the settings (another
		// environment): a socket here would never be found.
		return fmt.Errorf("ssh-mux: socket %s, but the settings name %s", s.Sock, m.sock)
	}
	lock, ok, err := m.tryLock()
	if err != nil || !ok {
		return err
	}
	defer lock.Close()

	up, err := Dial(context.Background(), "mux", s.Target, o)
	if err != nil {
		return err
	}
	defer up.Close()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		return err
	}
	// What a mux that died left is ours to replace: we hold the lock.
	m.removeServed()
	if err := writePrivate(m.pin, ssh.MarshalAuthorizedKey(signer.PublicKey())); err != nil {
		return err
	}
	l, err := net.Listen("unix", m.sock)
	if err != nil {
		os.Remove(m.pin)
		return err
	}
	defer m.removeServed()
	defer l.Close()
	lock.Truncate(0)
	lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)

	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(signer)
	srv := &muxServer{up: up.conn, cfg: cfg, idle: time.NewTimer(s.Persist), persist: s.Persist, user: t.User, sessions: make(chan struct{}, maxSessions)}
	go srv.accept(l)
	go srv.keepalive()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	upDone := make(chan struct{})
	go func() { up.conn.Wait(); close(upDone) }()
	for {
		select {
		case <-srv.idle.C:
			if srv.stopIfIdle() {
				return nil
			}
		case <-upDone:
			return nil
		case <-stop:
			return nil
		}
	}
}

// writePrivate writes a 0600 file whole: a client never reads half a pin.
func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// muxServer serves runs' connections over one connection to the node.
// It is idle while no run is connected: a run keeps its connection to the
// mux open from its first use to its end, including waits without a
// session (apply asking for approval), and such a wait must not end it.
type muxServer struct {
	up      *ssh.Client
	cfg     *ssh.ServerConfig
	user    string
	persist time.Duration
	// sessions bounds the sessions open upstream (see proxyChannel).
	sessions chan struct{}

	mu      sync.Mutex
	clients int
	idle    *time.Timer
	stopped bool
}

func (s *muxServer) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.serve(c)
	}
}

func (s *muxServer) serve(c net.Conn) {
	defer c.Close()
	// Only the user's own processes: the folder's mode says so too, but
	// the kernel's word on the peer does not depend on files.
	if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
		return
	}
	if !s.enter() {
		return
	}
	defer s.leave()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	if sc.User() != s.user {
		// The socket's name says who logs in; a run asking for another
		// user has the wrong socket.
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		wg.Add(1)
		go func() { proxyChannel(s.up, nc, s.sessions); wg.Done() }()
	}
	wg.Wait()
}

func (s *muxServer) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.clients++
	s.idle.Stop()
	return true
}

func (s *muxServer) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients--; s.clients == 0 {
		s.idle.Reset(s.persist)
	}
}

// stopIfIdle stops serving when no run is connected; a run that came in
// as the timer fired keeps the mux.
func (s *muxServer) stopIfIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = s.clients == 0
	return s.stopped
}

func (s *muxServer) keepalive() {
	for range time.Tick(muxKeepalive) {
		answered := make(chan struct{})
		go func() {
			s.up.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-time.After(muxKeepalive):
			s.up.Close()
			return
		}
	}
}
