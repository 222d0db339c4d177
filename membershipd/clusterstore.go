package membershipd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/unibus/unibus/membershipd/store"
)

// clusterStore brings up the replicated control plane on a cluster node:
// JetStream KV buckets and the blob object store. Creating R3 buckets needs
// three JetStream servers, so a node that starts first keeps trying, and
// reports why in /readyz, until its peers are there.
type clusterStore struct {
	mu      sync.Mutex
	lastErr error
	kv      *store.KV
}

func (c *clusterStore) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (d *Daemon) startClusterStore(ctx context.Context, js jetstream.JetStream) {
	want := d.cfg.Cluster.KVReplicas
	for attempt := 0; ; attempt++ {
		kv, blobs, err := openClusterStore(ctx, js, want)
		if err == nil {
			err = d.importLocalState(ctx, kv, blobs)
		}
		if err == nil {
			err = d.ensureFirstAdmin(ctx, kv)
		}
		if err == nil {
			d.cs.mu.Lock()
			d.cs.kv, d.cs.lastErr = kv, nil
			d.cs.mu.Unlock()
			d.control.Store(&controlState{store: kv, blobs: blobs})
			d.log.Info("control-plane store ready", "kv_replicas", want)
			d.bus.request() // the members, now that there is a store to read them from
			if err := d.db.MarkClusterNode(ctx, d.cfg.Cluster.Name); err != nil {
				d.log.Warn("could not mark the state dir as a cluster node's", "err", err)
			}
			go d.watchMembership(ctx, js)
			go d.raiseReplicas(ctx, kv, want)
			return
		}
		d.cs.mu.Lock()
		d.cs.lastErr = err
		d.cs.mu.Unlock()
		if attempt%10 == 0 {
			d.log.Warn("control-plane store not ready yet; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func openClusterStore(ctx context.Context, js jetstream.JetStream, replicas int) (*store.KV, *store.ObjectBlobs, error) {
	// Short attempts: before the peers are up, a create can wait on a meta
	// leader that does not exist yet.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	kv, err := store.NewKV(ctx, js, store.KVOptions{Replicas: replicas, NonceTTL: nonceTTL})
	if err != nil {
		return nil, nil, err
	}
	blobs, err := store.NewObjectBlobs(ctx, js, replicas)
	if err != nil {
		return nil, nil, err
	}
	return kv, blobs, nil
}

// importLocalState copies what this node's SQLite holds (a first admin made
// with membershipd bootstrap, or the whole state of a node that ran alone
// before, blobs included) into KV and the object store, at the cluster's
// first formation only: once the cluster has an admin, its members are
// managed through its signed control plane, and whoever can write one
// node's state dir must not be able to inject an admin by restarting it.
// It is idempotent, and a conflict (the same handle with another key)
// keeps what KV has and is logged.
func (d *Daemon) importLocalState(ctx context.Context, kv *store.KV, blobs *store.ObjectBlobs) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	formed, err := kv.HasAdmin(ctx)
	if err != nil {
		return fmt.Errorf("look for the cluster's control state: %w", err)
	}
	if formed {
		if local, err := d.db.AllMembers(ctx); err == nil && len(local) > 0 {
			if already, _ := d.db.ClusterNode(ctx); already == "" {
				d.log.Warn("this node's local members were not imported: the cluster already has an admin; an admin adds members with unibus member add", "local_members", len(local))
			}
		}
		return nil
	}
	sum, err := store.Migrate(ctx, d.db, kv, blobs)
	if err != nil {
		return fmt.Errorf("import local state into kv: %w", err)
	}
	if sum.Changed() {
		d.log.Info("local state imported into the cluster's kv", "summary", sum.String())
	}
	for _, c := range sum.Conflicts {
		d.log.Warn("local state conflicts with the cluster's kv; kept the cluster's", "conflict", c)
	}
	return nil
}

// raiseReplicas brings buckets made at R1 (by an earlier --kv-replicas 1)
// up to the configured count once enough servers are in the cluster. It
// never lowers them.
func (d *Daemon) raiseReplicas(ctx context.Context, kv *store.KV, want int) {
	for {
		have, err := kv.Replicas(ctx)
		if err == nil && have >= want {
			return
		}
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = kv.SetReplicas(rctx, want)
			cancel()
			if err == nil {
				d.log.Info("control-plane buckets raised", "from", have, "to", want)
				return
			}
			if !errors.Is(err, store.ErrTooFewPeers) {
				d.log.Warn("raise control-plane replicas", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// watchMembership applies membership changes made through any node to this
// node's bus users: without it, a member removed on node A would keep its
// rooms on node C until C restarted.
func (d *Daemon) watchMembership(ctx context.Context, js jetstream.JetStream) {
	for _, bucket := range []string{store.BucketMembers, store.BucketRooms} {
		go d.watchBucket(ctx, js, bucket)
	}
}

// watchBucket requests a bus update for every change to bucket, for as long
// as ctx lives. The first watch delivers the bucket's current values before
// its updates, so a change made between the store's first load and the
// watch's start is not missed. If the watch ends (its consumer lost, the
// connection closed), it is made again from the revision after the last one
// seen, with a full reload requested for whatever the gap held.
func (d *Daemon) watchBucket(ctx context.Context, js jetstream.JetStream, bucket string) {
	var last uint64
	for attempt := 0; ctx.Err() == nil; attempt++ {
		kv, err := js.KeyValue(ctx, bucket)
		var w jetstream.KeyWatcher
		if err == nil {
			var opts []jetstream.WatchOpt
			if last > 0 {
				opts = append(opts, jetstream.ResumeFromRevision(last+1))
			}
			w, err = kv.WatchAll(ctx, opts...)
		}
		if err != nil {
			if attempt%10 == 0 && ctx.Err() == nil {
				d.log.Warn("watch control-plane changes; retrying", "bucket", bucket, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		d.bus.request()
		for e := range w.Updates() {
			if e == nil {
				continue // the end of the current values
			}
			last = e.Revision()
			d.bus.request()
		}
		w.Stop()
		// A watch that ended; make it again, but not in a tight loop.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
