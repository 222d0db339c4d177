package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unibus/unibus/internal/cli"
)

func newRoomCmd(ui cli.UI) *cobra.Command {
	var bf busFlags
	cmd := &cobra.Command{
		Use:   "room",
		Short: "Create rooms and manage who is in them",
		Long: `Rooms are groups of members sharing a room key. The key is made on your machine
and sealed with age to each member; the server only ever stores sealed keys.`,
	}
	bf.register(cmd, false)

	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a room you own, with a fresh room key",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := bf.client()
			if err != nil {
				return err
			}
			room, _, err := c.CreateRoomWithKey(context.Background(), args[0])
			if err != nil {
				return apiErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), room.ID)
			ui.Printf("room %q created (id %s, key epoch %d)", room.Name, room.ID, room.KeyEpoch)
			return nil
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List your rooms",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := bf.client()
			if err != nil {
				return err
			}
			rooms, err := c.Rooms(context.Background())
			if err != nil {
				return apiErr(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tOWNER\tEPOCH\tMEMBERS")
			for _, r := range rooms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.ID, r.Name, r.Owner, r.KeyEpoch, strings.Join(r.Members, ","))
			}
			return tw.Flush()
		},
	}

	add := &cobra.Command{
		Use:   "add ROOM HANDLE",
		Short: "Add a member to a room and seal the room key to them (owner or admin)",
		Args:  exactArgs(2, "ROOM and HANDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			c, room, err := bf.roomClient(ctx, args[0])
			if err != nil {
				return err
			}
			if _, err := c.AddMemberWithKey(ctx, room.ID, args[1]); err != nil {
				return apiErr(err)
			}
			ui.Printf("%s added to room %q; the room key is sealed to them", args[1], room.Name)
			return nil
		},
	}

	remove := &cobra.Command{
		Use:   "remove ROOM HANDLE",
		Short: "Remove a member from a room and re-key it for the others",
		Args:  exactArgs(2, "ROOM and HANDLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			c, room, err := bf.roomClient(ctx, args[0])
			if err != nil {
				return err
			}
			r, k, err := c.RemoveMemberAndRekey(ctx, room.ID, args[1])
			if err != nil {
				return apiErr(err)
			}
			ui.Printf("%s removed from room %q; new key epoch %d sealed to %d member(s)", args[1], r.Name, k.Epoch, len(r.Members))
			return nil
		},
	}

	rekey := &cobra.Command{
		Use:   "rekey ROOM",
		Short: "Make a new room key for the current epoch and seal it to every member",
		Args:  exactArgs(1, "ROOM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			c, room, err := bf.roomClient(ctx, args[0])
			if err != nil {
				return err
			}
			k, err := c.Rekey(ctx, room.ID)
			if err != nil {
				return apiErr(err)
			}
			ui.Printf("room %q re-keyed at epoch %d for %d member(s)", room.Name, k.Epoch, len(room.Members))
			return nil
		},
	}
	cmd.AddCommand(create, list, add, remove, rekey)
	return cmd
}
