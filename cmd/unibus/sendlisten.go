package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/unibus/unibus/client"
	"github.com/unibus/unibus/internal/cli"
)

func validTopic(topic string, wildcard bool) error {
	if topic == "" || strings.ContainsAny(topic, " \t\r\n") || strings.HasPrefix(topic, ".") || strings.HasSuffix(topic, ".") || strings.Contains(topic, "..") {
		return cli.Usagef("--topic %q: must be dot-separated tokens without spaces", topic)
	}
	if !wildcard && strings.ContainsAny(topic, "*>") {
		return cli.Usagef("--topic %q: wildcards are for listen only", topic)
	}
	return nil
}

func newSendCmd(ui cli.UI) *cobra.Command {
	var bf busFlags
	var topic string
	cmd := &cobra.Command{
		Use:   "send ROOM [MESSAGE...]",
		Short: "Send end-to-end encrypted messages to a room",
		Long: `Send a message to a room, sealed with the room key on this machine. With no
MESSAGE, each line of standard input is sent as one message.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validTopic(topic, false); err != nil {
				return err
			}
			ctx := context.Background()
			c, room, err := bf.roomClient(ctx, args[0])
			if err != nil {
				return err
			}
			key, err := c.RoomKey(ctx, room.ID)
			if err != nil {
				return apiErr(err)
			}
			nc, err := bf.connect(c.Identity())
			if err != nil {
				return err
			}
			defer nc.Close()
			subject := client.Subject(room.ID, topic)
			send := func(text string) error {
				return nc.PublishMsg(client.SealMessage(key, c.Identity().Handle, subject, []byte(text)))
			}
			n := 0
			if len(args) > 1 {
				if err := send(strings.Join(args[1:], " ")); err != nil {
					return err
				}
				n++
			} else {
				sc := bufio.NewScanner(cmd.InOrStdin())
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					if err := send(sc.Text()); err != nil {
						return err
					}
					n++
				}
				if err := sc.Err(); err != nil {
					return err
				}
			}
			// Flush waits for the server to have every message: a
			// permissions violation or a closed connection shows here.
			if err := nc.FlushTimeout(10 * time.Second); err != nil {
				return fmt.Errorf("send to room %q: %w", room.Name, err)
			}
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("send to room %q: %w", room.Name, err)
			}
			ui.Printf("sent %d message(s) to room %q", n, room.Name)
			return nil
		},
	}
	bf.register(cmd, true)
	cmd.Flags().StringVar(&topic, "topic", "chat", "topic within the room")
	return cmd
}

func newListenCmd(ui cli.UI) *cobra.Command {
	var bf busFlags
	var topic string
	var count int
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "listen ROOM",
		Short: "Print a room's messages as they arrive, decrypted",
		Args:  exactArgs(1, "ROOM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validTopic(topic, true); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c, room, err := bf.roomClient(ctx, args[0])
			if err != nil {
				return err
			}
			key, err := c.RoomKey(ctx, room.ID)
			if err != nil {
				return apiErr(err)
			}
			violations := make(chan error, 1)
			nc, err := bf.connect(c.Identity())
			if err != nil {
				return err
			}
			defer nc.Close()
			nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case violations <- err:
				default:
				}
			})
			msgs := make(chan *nats.Msg, 256)
			sub, err := nc.ChanSubscribe(client.Subject(room.ID, topic), msgs)
			if err != nil {
				return err
			}
			defer sub.Unsubscribe()
			if err := nc.Flush(); err != nil {
				return err
			}
			ui.Printf("listening to room %q, topic %s", room.Name, topic)
			out := cmd.OutOrStdout()
			for n := 0; count == 0 || n < count; {
				select {
				case <-ctx.Done():
					if errors.Is(ctx.Err(), context.DeadlineExceeded) {
						return fmt.Errorf("no message within %s", timeout)
					}
					return nil
				case err := <-violations:
					return fmt.Errorf("bus refused the subscription: %w", err)
				case m := <-msgs:
					from, text, err := client.OpenMessage(key, m)
					if errors.Is(err, client.ErrEpoch) {
						// The room was re-keyed: fetch the new key once.
						if key, err = c.RoomKey(ctx, room.ID); err == nil {
							from, text, err = client.OpenMessage(key, m)
						}
					}
					if err != nil {
						ui.Warnf("skipped a message: %v", err)
						continue
					}
					topicOf := strings.TrimPrefix(m.Subject, client.Subject(room.ID, ""))
					if asJSON {
						json.NewEncoder(out).Encode(map[string]string{"from": from, "topic": topicOf, "text": string(text)})
					} else {
						fmt.Fprintf(out, "%s: %s\n", from, text)
					}
					n++
				}
			}
			return nil
		},
	}
	bf.register(cmd, true)
	cmd.Flags().StringVar(&topic, "topic", "chat", "topic within the room; > for all")
	cmd.Flags().IntVar(&count, "count", 0, "exit after `N` messages (0: run until interrupted)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a message: from, topic, text")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: no limit)")
	return cmd
}
