package sshnode

import (
	"errors"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// proxyChannel serves a channel a run opened on the mux with a channel
// of the same type opened upstream, on the node's sshd: what one side
// sends the other gets (data, stderr, EOF, requests and their replies,
// close), so a session or a direct-tcpip tunnel behaves as it does over
// a direct connection. sshd's refusal (MaxSessions, a closed port) is
// passed on with its reason and message.
//
// sessions bounds the sessions open upstream at once: every run through
// the mux keeps to [maxSessions] of its own, and sshd refuses more than
// its MaxSessions on the one connection they share; a session over the
// bound waits for a slot, as it would in a run.
func proxyChannel(up ssh.Conn, nc ssh.NewChannel, sessions chan struct{}) {
	switch nc.ChannelType() {
	case "session":
		sessions <- struct{}{}
		defer func() { <-sessions }()
	case "direct-tcpip":
	default:
		nc.Reject(ssh.UnknownChannelType, "the unibus mux serves session and direct-tcpip channels only")
		return
	}
	upCh, upReqs, err := up.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			nc.Reject(oe.Reason, oe.Message)
		} else {
			nc.Reject(ssh.ConnectionFailed, err.Error())
		}
		return
	}
	downCh, downReqs, err := nc.Accept()
	if err != nil {
		upCh.Close()
		return
	}

	// The node's output, then its EOF: x/crypto refuses data (stderr
	// too) after EOF, so EOF waits for both streams.
	output := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { io.Copy(downCh, upCh); wg.Done() }()
		go func() { io.Copy(downCh.Stderr(), upCh.Stderr()); wg.Done() }()
		wg.Wait()
		downCh.CloseWrite()
		close(output)
	}()
	// The run's input (a script's stdin, a tunnel's bytes), then its EOF.
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { io.Copy(upCh, downCh); wg.Done() }()
		go func() { io.Copy(upCh.Stderr(), downCh.Stderr()); wg.Done() }()
		wg.Wait()
		upCh.CloseWrite()
	}()
	// The run's requests (exec, env, signal), answered by sshd; the run
	// closing its channel closes the node's. replied is held while a
	// reply is on its way: a command that ends at once has sshd send the
	// exec's reply, its exit status and the close back to back, and the
	// close passed on before the reply left the run's exec with EOF.
	var replied sync.Mutex
	go func() {
		for r := range downReqs {
			replied.Lock()
			ok, err := upCh.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				r.Reply(ok && err == nil, nil)
			}
			replied.Unlock()
		}
		upCh.Close()
	}()
	// The node's requests (exit-status, exit-signal) as they come: sshd
	// may send the status before the last output, which a session reads
	// all the same, to the channel's close, sent after the output below.
	for r := range upReqs {
		ok, err := downCh.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			r.Reply(ok && err == nil, nil)
		}
	}
	// sshd closed the channel: its output has ended too.
	<-output
	replied.Lock() // (a reply under way goes first)
	downCh.Close()
	replied.Unlock()
}
