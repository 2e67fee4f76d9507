package edge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// SCAN walks the whole cluster's keys, range of slots after range (the
// partitions' ranges when the walk began), each in key order, through the
// current leader of the partition holding it. The cursor a client holds
// names a walk the node that began it keeps: the ranges left, where the
// current one resumes and the last key looked at; its high bits name that
// node, and any other node sends the step there, so the cursor is good on
// every node. Within a range a walk resumes after the last key, so leader
// changes and replica moves do not disturb it, and every key present for
// the whole walk is returned (at least once, as in Redis).
//
// Splits and merges do not either: each step asks the partition that
// holds the range's next slot by the current map, for keys of the range's
// slots it holds, and the partition checks it holds them all (a stale map
// gets WrongGroup: the step reads the map afresh and asks again). A range
// a split cut continues from its cut in the new partition, from its first
// key (keys already returned may come again); a range a merge widened is
// walked inside the merged partition, keys of other slots skipped.
// A cluster-aware client scans each node (as it does a Redis Cluster's
// primaries): its walk covers only the partitions this node led when the
// walk began. Walks are bounded per node (maxScans, idle ones dropped
// after scanIdle); a dropped or unknown cursor answers "invalid cursor",
// as does one whose node has left.

func init() {
	command.Register(connSpec("scan", -2, command.Keyspace, cmdScan))
}

const (
	// cursorNodeShift: a cursor's bits above it name the node that keeps
	// its walk (node ids stay far below 2^15).
	cursorNodeShift  = 48
	maxScans         = 10000
	scanIdle         = 10 * time.Minute
	defaultScanCount = 10
)

type scanWalk struct {
	ranges [][2]uint16 // slot ranges, first to last (never changed: steps share it)
	i      int         // the range under way
	from   uint16      // where ranges[i] resumes: slots before it are done
	after  []byte      // the last key looked at from slot from on
	to     uint16      // with after: the last slot the step that looked at it asked for
	used   time.Time
	busy   bool // a SCAN with this cursor is running
}

type scanWalks struct {
	mu    sync.Mutex
	walks map[uint64]*scanWalk
}

// take hands out walk id for one step (nil: unknown, or in use by
// another SCAN of the same cursor).
func (s *scanWalks) take(id uint64, now time.Time) *scanWalk {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.walks[id]
	if w == nil || w.busy {
		return nil
	}
	w.busy, w.used = true, now
	return w
}

// put keeps w under a cursor (a new one when id is 0) for the next step
// and answers the cursor.
func (s *scanWalks) put(id, node uint64, w *scanWalk, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.walks == nil {
		s.walks = map[uint64]*scanWalk{}
	}
	w.busy, w.used = false, now
	if id != 0 {
		return id
	}
	if len(s.walks) >= maxScans {
		s.evict(now)
	}
	for id == 0 || s.walks[id] != nil {
		// The node in the high bits (any node forwards a step to the
		// walk's), positive as a signed integer too.
		id = node<<cursorNodeShift | rand.Uint64()>>(64-cursorNodeShift+1)
	}
	s.walks[id] = w
	return id
}

// evict drops idle walks, or the least recently used one.
func (s *scanWalks) evict(now time.Time) {
	var oldest uint64
	for id, w := range s.walks {
		if w.busy {
			continue
		}
		if now.Sub(w.used) > scanIdle {
			delete(s.walks, id)
			continue
		}
		if oldest == 0 || w.used.Before(s.walks[oldest].used) {
			oldest = id
		}
	}
	if len(s.walks) >= maxScans && oldest != 0 {
		delete(s.walks, oldest)
	}
}

func (s *scanWalks) drop(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.walks, id)
}

func (s *scanWalks) release(w *scanWalk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.busy = false
}

// cmdScan answers SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
func cmdScan(f *Server, args [][]byte, st *connState) []byte {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		return resp.AppendError(nil, "ERR invalid cursor")
	}
	count := defaultScanCount
	var pattern, typ []byte
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return resp.AppendError(nil, kv.ErrSyntax)
		}
		switch lower(args[i]) {
		case "match":
			pattern = args[i+1]
			if string(pattern) == "*" {
				pattern = nil
			}
		case "count":
			n, ok := kv.ParseInt(args[i+1])
			if !ok {
				return resp.AppendError(nil, kv.ErrNotInteger)
			}
			if n < 1 {
				return resp.AppendError(nil, kv.ErrSyntax)
			}
			count = int(min(n, kv.MaxScanCount))
		case "type":
			typ = []byte(strings.ToLower(string(args[i+1])))
		default:
			return resp.AppendError(nil, kv.ErrSyntax)
		}
	}
	if owner := cursor >> cursorNodeShift; owner != 0 && owner != f.cfg.NodeID && f.cfg.Peers != nil {
		// Another node keeps this walk: the step runs there.
		// Longer than the owner's own deadline for the step, so this
		// side does not give up on a step the owner then completes.
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout+2*time.Second)
		defer cancel()
		reply, err := f.cfg.Peers.AskNode(ctx, owner, peerRequest(append([][]byte{[]byte("scan")}, args...)...))
		if err != nil {
			return resp.AppendError(nil, fmt.Sprintf("TRYAGAIN node %d, which holds this SCAN cursor's walk, did not answer", owner))
		}
		return reply
	}
	now := f.now()
	var w *scanWalk
	if cursor == 0 {
		w = &scanWalk{ranges: f.scanRanges(st)}
		if len(w.ranges) > 0 {
			w.from = w.ranges[0][0]
		}
	} else if w = f.scans.take(cursor, now); w == nil {
		return resp.AppendError(nil, "ERR invalid cursor")
	}
	// Steps move a copy: a failed one leaves the walk where it was, so
	// a retry with the same cursor loses no key.
	step := &scanWalk{ranges: w.ranges, i: w.i, from: w.from, after: append([]byte(nil), w.after...), to: w.to}
	keys, err := f.scanSteps(step, count, pattern, typ)
	if err == nil {
		w.i, w.from, w.after, w.to = step.i, step.from, step.after, step.to
	}
	if err != nil {
		if cursor != 0 {
			f.scans.release(w) // the client may try the same cursor again
		}
		if se, ok := err.(*scanError); ok {
			return se.reply
		}
		return ErrorReply(err)
	}
	next := uint64(0)
	if w.i < len(w.ranges) {
		next = f.scans.put(cursor, f.cfg.NodeID, w, now)
	} else if cursor != 0 {
		f.scans.drop(cursor)
	}
	out := resp.AppendArrayHeader(nil, 2)
	out = resp.AppendBulkString(out, strconv.FormatUint(next, 10))
	out = resp.AppendArrayHeader(out, len(keys))
	for _, k := range keys {
		out = resp.AppendBulk(out, k)
	}
	return out
}

// scanRanges are the slot ranges a new walk covers: every partition's,
// or for a cluster-aware client those of the partitions this node leads
// (or would lead: the preferred leader of a partition without one).
func (f *Server) scanRanges(st *connState) [][2]uint16 {
	var rs [][2]uint16
	for _, p := range f.cfg.View.Partitions() {
		g := uint64(p.ID)
		if st.clusterAware {
			leader := f.cfg.View.LeaderOf(g)
			nodes := f.cfg.View.GroupNodes(g)
			if leader != f.cfg.NodeID && (leader != 0 || len(nodes) == 0 || nodes[0] != f.cfg.NodeID) {
				continue
			}
		}
		rs = append(rs, [2]uint16{p.SlotStart, p.SlotEnd})
	}
	return rs
}

// partitionAt is the partition holding slot by the current map.
func (f *Server) partitionAt(slot uint16) (api.PartitionRecord, bool) {
	for _, p := range f.cfg.View.Partitions() {
		if p.SlotStart <= slot && slot <= p.SlotEnd {
			return p, true
		}
	}
	return api.PartitionRecord{}, false
}

// scanSteps advances w: one step in its current range and, while ranges
// end and fewer than count keys were found, in the next ones.
func (f *Server) scanSteps(w *scanWalk, count int, pattern, typ []byte) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(commandCap(f.ctx), f.cfg.RequestTimeout)
	defer cancel()
	var keys [][]byte
	since := time.Now()
	for w.i < len(w.ranges) {
		end, reply, err := f.scanStep(ctx, w, count, pattern, typ, &since)
		if err != nil {
			return nil, err
		}
		v, _, perr := resp.ParseValue(reply)
		if perr != nil || v.Kind != '*' || len(v.Array) != 2 || v.Array[1].Kind != '*' {
			if perr == nil && v.Kind == '-' {
				return nil, &scanError{reply: reply}
			}
			return nil, &scanError{reply: resp.AppendError(nil, "ERR malformed scan reply")}
		}
		for _, k := range v.Array[1].Array {
			keys = append(keys, k.Str)
		}
		if last := v.Array[0].Str; len(last) > 0 {
			// Keys after last are still to look at, in slots from to
			// end only: a merge since may have joined more slots to the
			// partition, whose keys before last were never looked at.
			w.after, w.to = append(w.after[:0], last...), end
			break // it looked at count keys
		}
		// The partition holds no more of the range: on from its end.
		w.after = nil
		if end < w.ranges[w.i][1] {
			w.from = end + 1
		} else if w.i++; w.i < len(w.ranges) {
			w.from = w.ranges[w.i][0]
		}
		if len(keys) >= count {
			break
		}
	}
	return keys, nil
}

// scanStep asks the partition holding w's next slot, by the current map,
// for its keys of the range's slots; a refusal (the map is older than a
// split or merge) reads the map afresh and asks again, a few times.
func (f *Server) scanStep(ctx context.Context, w *scanWalk, count int, pattern, typ []byte, since *time.Time) (end uint16, reply []byte, err error) {
	err = &failure.WrongGroupError{}
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			f.cfg.View.RefreshMap(ctx, *since)
			*since = time.Now()
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		p, ok := f.partitionAt(w.from)
		if !ok {
			continue
		}
		end = min(w.ranges[w.i][1], p.SlotEnd)
		if len(w.after) > 0 {
			end = min(end, w.to)
		}
		reply, err = f.readOne(ctx, uint64(p.ID), kv.ScanSlotsArgs(w.after, count, pattern, typ, w.from, end))
		if err == nil && f.cfg.View.ClusterLevel() < api.LevelResize && isArityError(reply) {
			// A leader of a build before slot ranges (the cluster is
			// below their level) knows only the whole partition's scan.
			// It is exact while the walk's range starts at the
			// partition's first slot, and no split or merge starts
			// below the level of splits. (A read: an older leader
			// refusing the new form changed nothing.)
			reply, err = f.readOne(ctx, uint64(p.ID), kv.ScanArgs(w.after, count, pattern, typ))
		}
		if err == nil && failure.WrongGroup.Is(reply) {
			err = &failure.WrongGroupError{Group: uint64(p.ID)}
		}
		if !isWrongGroup(err) {
			return end, reply, err
		}
	}
	return 0, nil, &scanError{reply: resp.AppendError(nil, "TRYAGAIN the cluster map is changing (a partition split or merged): SCAN again with the same cursor")}
}

// isArityError reports whether reply is Redis's wrong-number-of-arguments
// error: what a build before slot ranges answers their scan.
func isArityError(reply []byte) bool {
	_, msg, ok := resp.ErrorReply(reply)
	return ok && strings.Contains(msg, "wrong number of arguments")
}

// scanError is an error reply a partition gave a scan step.
type scanError struct{ reply []byte }

func (e *scanError) Error() string {
	_, msg, _ := resp.ErrorReply(e.reply)
	return msg
}
