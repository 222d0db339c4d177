package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names. They are part of the on-disk format of a cluster: renaming
// one loses its data.
const (
	BucketMembers   = "unibus_members"     // key: handle → Member
	BucketRooms     = "unibus_rooms"       // key: room id → kvRoom
	BucketSealed    = "unibus_sealed_keys" // key: <room>.<handle> → SealedKey
	BucketBlobIndex = "unibus_blob_index"  // key: <sha256>.<room> → {"size": n}
	BucketNonces    = "unibus_nonces"      // key: sha256(nonce key) → expiry; MaxAge = NonceTTL
	BucketIndex     = "unibus_index"       // signpub.<U...> → handle; first-admin → handle
)

// kvBuckets are all the KV buckets, in the order they are created.
var kvBuckets = []string{BucketMembers, BucketRooms, BucketSealed, BucketBlobIndex, BucketNonces, BucketIndex}

// DefaultNonceTTL is how long a nonce is kept when KVOptions.NonceTTL is
// zero: twice membershipd's 60 s signature window plus slack, as the daemon's
// own nonceTTL.
const DefaultNonceTTL = 2*time.Minute + 5*time.Second

// KVOptions configure NewKV.
type KVOptions struct {
	// Replicas of every bucket a new cluster gets: 1 (not HA: one node's
	// disk holds the only copy) or 3. Existing buckets keep theirs; raise
	// them with SetReplicas.
	Replicas int
	// NonceTTL is how long a used nonce is remembered; it must be at least
	// the lifetime the daemon passes to UseNonce.
	NonceTTL time.Duration
}

// KV is the clustered store: control-plane state in replicated JetStream KV
// buckets.
//
// Scale assumption: members and rooms are counted in hundreds to a few
// thousand. AllMembers, AllRooms, RoomsOf and HasAdmin walk a whole bucket
// with one leader request per key, which is fine at that size and keeps every
// answer as fresh as the stream leader's.
//
// Consistency: every read-then-write is a compare-and-set on the key's
// revision (the stream's last sequence for that subject), retried a bounded
// number of times, so two nodes never overwrite each other. Reads that decide
// an authorization (Member, Room, SealedKey, BlobInRoom) and the reads that
// feed a compare-and-set go to the stream leader; see leaderGet.
type KV struct {
	js   jetstream.JetStream
	nc   *nats.Conn
	opts KVOptions

	members, rooms, sealed, blobIndex, nonces, index jetstream.KeyValue
}

var _ Store = (*KV)(nil)

// NewKV binds the buckets, creating those that do not exist with
// opts.Replicas. The connection stays the caller's: Close does not close it.
func NewKV(ctx context.Context, js jetstream.JetStream, opts KVOptions) (*KV, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Replicas != 1 && opts.Replicas != 3 {
		return nil, fmt.Errorf("kv replicas %d: must be 1 or 3", opts.Replicas)
	}
	if opts.NonceTTL == 0 {
		opts.NonceTTL = DefaultNonceTTL
	}
	if opts.NonceTTL < time.Second {
		// nats-server refuses a MaxAge under 100ms; under a second the
		// nonce would outlive nothing useful.
		return nil, fmt.Errorf("nonce ttl %s: must be at least 1s", opts.NonceTTL)
	}
	s := &KV{js: js, nc: js.Conn(), opts: opts}
	targets := map[string]*jetstream.KeyValue{
		BucketMembers: &s.members, BucketRooms: &s.rooms, BucketSealed: &s.sealed,
		BucketBlobIndex: &s.blobIndex, BucketNonces: &s.nonces, BucketIndex: &s.index,
	}
	for _, name := range kvBuckets {
		kv, err := s.bucket(ctx, name)
		if err != nil {
			return nil, err
		}
		*targets[name] = kv
	}
	return s, nil
}

// bucket binds name, or creates it. Binding never changes an existing
// bucket's replicas (a node started with R1 must not shrink an R3 cluster),
// but it does bring the nonce TTL to what was asked.
func (s *KV) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		cfg := jetstream.KeyValueConfig{
			Bucket:   name,
			History:  1,
			Storage:  jetstream.FileStorage,
			Replicas: s.opts.Replicas,
		}
		if name == BucketNonces {
			cfg.TTL = s.opts.NonceTTL
		}
		kv, err = s.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another node created it between our two calls.
			kv, err = s.js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", name, replicasHint(err))
	}
	if name == BucketNonces {
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("kv bucket %s: %w", name, err)
		}
		if st.TTL() != s.opts.NonceTTL {
			if err := s.updateStream(ctx, "KV_"+name, func(c *jetstream.StreamConfig) {
				c.MaxAge = s.opts.NonceTTL
				c.Duplicates = min(c.Duplicates, s.opts.NonceTTL)
			}); err != nil {
				return nil, fmt.Errorf("kv bucket %s: set ttl %s: %w", name, s.opts.NonceTTL, err)
			}
		}
	}
	return kv, nil
}

// ObjectBlobsBucket is the object store that holds blobs in a cluster.
const ObjectBlobsBucket = "unibus_blobs"

// SetReplicas changes every bucket (and the blob object store, when it
// exists) to n replicas in place, then waits, bounded by ctx, until each
// stream has n current replicas. Raising 1 → 3 is how a single node becomes
// a cluster without losing its state.
func (s *KV) SetReplicas(ctx context.Context, n int) error {
	if n != 1 && n != 3 {
		return fmt.Errorf("kv replicas %d: must be 1 or 3", n)
	}
	streams := make([]string, 0, len(kvBuckets)+1)
	for _, b := range kvBuckets {
		streams = append(streams, "KV_"+b)
	}
	if _, err := s.js.Stream(ctx, "OBJ_"+ObjectBlobsBucket); err == nil {
		streams = append(streams, "OBJ_"+ObjectBlobsBucket)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	for _, name := range streams {
		if err := s.updateStream(ctx, name, func(c *jetstream.StreamConfig) { c.Replicas = n }); err != nil {
			return fmt.Errorf("set %s to %d replicas: %w", name, n, replicasHint(err))
		}
	}
	for _, name := range streams {
		if err := waitReplicas(ctx, s.js, name, n); err != nil {
			return err
		}
	}
	s.opts.Replicas = n
	return nil
}

func (s *KV) updateStream(ctx context.Context, name string, change func(*jetstream.StreamConfig)) error {
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	change(&cfg)
	_, err = s.js.UpdateStream(ctx, cfg)
	return err
}

// waitReplicas polls stream info (answered by the stream leader) until the
// stream has n-1 followers, all current.
func waitReplicas(ctx context.Context, js jetstream.JetStream, name string, n int) error {
	for {
		st, err := js.Stream(ctx, name)
		if err == nil {
			info := st.CachedInfo()
			if info.Config.Replicas == n && replicasCurrent(info, n) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s: not %d current replicas before the deadline: %w", name, n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func replicasCurrent(info *jetstream.StreamInfo, n int) bool {
	if n == 1 {
		return info.Cluster == nil || len(info.Cluster.Replicas) == 0
	}
	// Desired is set while nats-server is still reconfiguring the group.
	if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Desired != nil || len(info.Cluster.Replicas) != n-1 {
		return false
	}
	for _, p := range info.Cluster.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

// ErrTooFewPeers is returned when the cluster cannot place the replicas asked.
var ErrTooFewPeers = errors.New("the nats cluster has fewer JetStream servers than replicas asked")

// replicasHint turns nats-server's placement errors into ErrTooFewPeers.
func replicasHint(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023, // insufficient resources: no peers to place replicas on
			10074: // replicas > 1 not supported in non-clustered mode
			return fmt.Errorf("%w (%v): start all nodes first, or use --kv-replicas 1 (not HA)", ErrTooFewPeers, err)
		}
	}
	return err
}

// Replicas is the replica count of the buckets as the cluster has them
// (the members bucket speaks for all), for /healthz's kv_replicas.
func (s *KV) Replicas(ctx context.Context) (int, error) {
	st, err := s.js.Stream(ctx, "KV_"+BucketMembers)
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().Config.Replicas, nil
}

// Close does nothing: the NATS connection belongs to the daemon.
func (s *KV) Close() error { return nil }

// entry is one key's latest message as the stream leader has it.
type entry struct {
	value    []byte
	revision uint64
	created  time.Time
	deleted  bool // a delete or purge marker: the key is gone
}

// leaderGet reads the latest value of key in bucket from the stream leader.
//
// Why not kv.Get or Stream.GetLastMsgForSubject: KV buckets are created with
// AllowDirect, and nats.go (v1.55 jetstream, stream.getMsg) then sends both
// to $JS.API.DIRECT.GET.<stream>.<subject>. nats-server (v2.15.2,
// stream.go processDirectGetLastBySubjectRequest) answers those from a
// queue subscription held by every replica, so a follower that has not yet
// applied the latest commit may answer with the previous value.
//
// $JS.API.STREAM.MSG.GET.<stream> is different: in clustered mode
// jetstream_api.go jsMsgGetRequest drops the request on every server but the
// stream leader ("only the stream leader should answer"), and answers
// "cluster not available" when the group has no leader. The leader is the
// server that stored and acknowledged every committed write (a KV put's ack
// comes from the leader once the message is in its store). A newly elected
// one only acts as stream leader after it applied its whole log: raft.go
// switchToLeader sets aflr = pindex and the leadership is signalled to the
// stream once processed >= aflr ("it's important to wait signaling we're
// leader if we're not up-to-date yet"). So a write acknowledged through any
// node is visible to the next leader read through any other node.
func (s *KV) leaderGet(ctx context.Context, bucket, key string) (entry, error) {
	req := msgGetRequest{LastFor: "$KV." + bucket + "." + key}
	m, err := s.msgGet(ctx, "KV_"+bucket, req)
	if err != nil {
		return entry{}, err
	}
	return m.entry()
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

type storedMsg struct {
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"seq"`
	Header   []byte    `json:"hdrs,omitempty"`
	Data     []byte    `json:"data,omitempty"`
	Time     time.Time `json:"time"`
}

func (m *storedMsg) entry() (entry, error) {
	e := entry{value: m.Data, revision: m.Sequence, created: m.Time}
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return entry{}, fmt.Errorf("kv message %d: headers: %w", m.Sequence, err)
		}
		switch h.Get("KV-Operation") {
		case "DEL", "PURGE":
			e.deleted = true
		}
	}
	return e, nil
}

type msgGetResponse struct {
	Message *storedMsg `json:"message"`
	Error   *struct {
		Code        int    `json:"code"`
		ErrorCode   int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// errNoMsg is the leader's "no message found": no such key.
var errNoMsg = errors.New("no message")

// msgGet sends one STREAM.MSG.GET request. While the group elects a leader
// (no responders, "cluster not available", or silence because the stream
// is not yet assigned here) it retries until ctx ends: a leader-less group
// is a seconds-long state, and failing an authorization check through it
// is worse than waiting.
func (s *KV) msgGet(ctx context.Context, stream string, req msgGetRequest) (*storedMsg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	body, _ := json.Marshal(req)
	subject := apiPrefix(s.js.Options()) + "STREAM.MSG.GET." + stream
	for attempt := 0; ; attempt++ {
		// Each attempt gets a slice of the deadline so a request that a
		// follower silently dropped during an election is asked again:
		// 250ms first (a leader answers in a millisecond; a dropped request
		// cost every read during a leader move a whole second), doubling to
		// 1s.
		actx, cancel := context.WithTimeout(ctx, min(250*time.Millisecond<<min(attempt, 2), time.Second))
		msg, err := s.nc.RequestWithContext(actx, subject, body)
		cancel()
		if err == nil {
			var resp msgGetResponse
			if err := json.Unmarshal(msg.Data, &resp); err != nil {
				return nil, fmt.Errorf("%s: %w", subject, err)
			}
			switch {
			case resp.Error != nil && resp.Error.ErrorCode == 10037:
				return nil, errNoMsg
			case resp.Error != nil && resp.Error.ErrorCode == 10008: // cluster not available
				err = fmt.Errorf("%s: %s", subject, resp.Error.Description)
			case resp.Error != nil:
				return nil, fmt.Errorf("%s: %s (%d)", subject, resp.Error.Description, resp.Error.ErrorCode)
			case resp.Message == nil:
				return nil, fmt.Errorf("%s: empty response", subject)
			default:
				return resp.Message, nil
			}
		} else if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no stream leader answered: %w (last: %v)", subject, ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}

// leaderScan walks every live key of bucket in sequence order through the
// stream leader, one request per key. A key updated during the walk is
// seen at its newer sequence too; the later value wins.
func (s *KV) leaderScan(ctx context.Context, bucket string, each func(key string, e entry) error) error {
	prefix := "$KV." + bucket + "."
	latest := map[string]entry{}
	var order []string
	for seq := uint64(1); ; {
		m, err := s.msgGet(ctx, "KV_"+bucket, msgGetRequest{Seq: seq, NextFor: prefix + ">"})
		if errors.Is(err, errNoMsg) {
			break
		}
		if err != nil {
			return err
		}
		e, err := m.entry()
		if err != nil {
			return err
		}
		key := strings.TrimPrefix(m.Subject, prefix)
		if _, seen := latest[key]; !seen {
			order = append(order, key)
		}
		latest[key] = e
		seq = m.Sequence + 1
	}
	for _, k := range order {
		if e := latest[k]; !e.deleted {
			if err := each(k, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// get is leaderGet with a missing or deleted key as ErrNotFound.
func (s *KV) get(ctx context.Context, bucket, key string) (entry, error) {
	e, err := s.leaderGet(ctx, bucket, key)
	if errors.Is(err, errNoMsg) || err == nil && e.deleted {
		return entry{}, ErrNotFound
	}
	return e, err
}

// inProcess: the stream leader refused a write that expects a key's last
// revision because another such write of that key is proposed and not yet
// committed (nats-server 10164, "wrong last sequence" with no number;
// nats.go reports it as ErrKeyExists on Create). That write may still
// commit, or be dropped at the next leader change, as after a timed-out
// attempt during quorum loss; so the refusal says nothing about whether
// the key exists. Only a refusal naming the key's revision (10071) does.
func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// create is kv.Create made robust to a moving stream leader: it waits out
// another write of the same key still in process, and retries an attempt
// that got no acknowledgement within attemptTimeout (a leader that stepped
// down drops the proposal, and nats.go would wait its whole 5s default).
// Until ctx ends (5s when it has no deadline); it then fails with ctx's
// error, which the API answers as unavailable: retry later.
//
// It writes as kv.Create does (expecting no message for the key, else
// over a delete marker) but reads the key from the stream leader: after
// any failed write nats.go's Create reads it with a direct get, which
// nats-server v2.15.2 answers reading its options unlocked
// (stream.go getDirectRequest, s.opts.MaxPending) while the daemon's bus
// user updates replace them (ReloadOptions): a data race in the server
// that the race detector reported once in a CI run.
func (s *KV) create(ctx context.Context, kv jetstream.KeyValue, key string, value []byte) (uint64, error) {
	return s.retryWrite(ctx, kv, key, value, jetstream.ErrKeyExists, func(ctx context.Context) (uint64, error) {
		rev, err := kv.Update(ctx, key, value, 0)
		if err == nil || inProcess(err) || !errors.Is(err, jetstream.ErrKeyExists) {
			return rev, err
		}
		// The key has a message: its value, or the marker of a key
		// deleted since, which a create may write over.
		if e, gerr := s.leaderGet(ctx, kv.Bucket(), key); gerr == nil && e.deleted {
			return kv.Update(ctx, key, value, e.revision)
		}
		return rev, err
	})
}

// update is kv.Update with create's retries.
func (s *KV) update(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, last uint64) (uint64, error) {
	return s.retryWrite(ctx, kv, key, value, jetstream.ErrKeyRevisionMismatch,
		func(ctx context.Context) (uint64, error) { return kv.Update(ctx, key, value, last) })
}

// attemptTimeout bounds one KV write's wait for its acknowledgement. An R3
// write on a loopback cluster is acknowledged in about a millisecond.
const attemptTimeout = time.Second

func (s *KV) retryWrite(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, refusal error, write func(context.Context) (uint64, error)) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	unacked := false
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		rev, err := write(actx)
		cancel()
		switch {
		case err == nil:
			return rev, nil
		case inProcess(err):
			// Another write of the key, perhaps our own unacknowledged
			// one, is still proposed: wait until it commits or is dropped.
		case unacked && errors.Is(err, refusal):
			// An attempt whose acknowledgement was lost may have landed:
			// the key holding exactly our bytes says it did.
			if e, gerr := s.get(ctx, kv.Bucket(), key); gerr == nil && bytes.Equal(e.value, value) {
				return e.revision, nil
			}
			return rev, err
		case ctx.Err() == nil && unanswered(err):
			unacked = true
		default:
			return rev, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("kv key %s: not acknowledged (%v): %w", key, err, ctx.Err())
		case <-time.After(backoff(attempt)):
		}
	}
}

// unanswered: the write got no acknowledgement, as while a stream's
// leadership moves; it may or may not have landed.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// maxCASAttempts bounds a compare-and-set loop. Conflicts need another
// writer on the same key between our read and our write; dozens in a row
// mean something is hammering one room.
const maxCASAttempts = 32

// casUpdate reads key from the leader, lets change compute the new value
// (or return an error to stop), and writes it only if nobody wrote since.
func (s *KV) casUpdate(ctx context.Context, kv jetstream.KeyValue, bucket, key string, change func(e entry) ([]byte, error)) (uint64, error) {
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		e, err := s.get(ctx, bucket, key)
		if err != nil {
			return 0, err
		}
		value, err := change(e)
		if err != nil {
			return 0, err
		}
		rev, err := s.update(ctx, kv, key, value, e.revision)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("kv %s/%s: %w", bucket, key, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff(attempt)):
		}
	}
	return 0, fmt.Errorf("kv %s/%s changed %d times while updating it; try again", bucket, key, maxCASAttempts)
}

// backoff grows from about 1ms to 100ms with jitter, so two nodes that
// collided do not collide again in lockstep.
func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 7)
	d = min(d, 100*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// apiPrefix is the JetStream API prefix js sends its own requests to.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// StoreClientPublishSubjects are the subjects a NATS client must be allowed
// to publish to for NewKV, NewObjectBlobs, the Store methods and Migrate
// over its own connection (migrate-to-kv under --bus-auth enforce): the KV
// puts, blob writes, and the JetStream API requests nats.go and leaderGet
// send for these buckets only. Replies come back on the client's inbox,
// which it must be allowed to subscribe to.
//
// Blob bytes stay unreadable to such a client, as they are over HTTP to
// anyone outside the blob's room: it may read an object's metadata (a
// direct get by subject, limited to the metadata subjects), never a chunk
// (no consumers, no get by sequence), nor purge one.
func StoreClientPublishSubjects() []string {
	api := jetstream.DefaultAPIPrefix
	subjects := []string{api + "INFO"} // account info, asked before a bucket is created
	for _, b := range kvBuckets {
		stream := "KV_" + b
		subjects = append(subjects,
			"$KV."+b+".>",                 // puts, compare-and-set updates, deletes
			api+"STREAM.INFO."+stream,     // bind the bucket
			api+"STREAM.CREATE."+stream,   // create it when missing
			api+"STREAM.UPDATE."+stream,   // nonce TTL, SetReplicas
			api+"STREAM.MSG.GET."+stream,  // leader reads (leaderGet, leaderScan)
			api+"DIRECT.GET."+stream+".>", // nats.go's Create re-reads a key that exists
		)
	}
	objects := "OBJ_" + ObjectBlobsBucket
	subjects = append(subjects,
		"$O."+ObjectBlobsBucket+".>",                              // chunks and metadata of a Put
		api+"STREAM.INFO."+objects,                                // bind the store
		api+"STREAM.CREATE."+objects,                              // create it when missing
		api+"STREAM.UPDATE."+objects,                              // SetReplicas
		api+"DIRECT.GET."+objects+".$O."+ObjectBlobsBucket+".M.>", // GetInfo: metadata only
	)
	return subjects
}
