package txn

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"slices"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
)

// Speculation and effects: how a script runs once and is replicated as
// what it did.
//
// A script (package script) runs on its partition's leader against a
// frozen view of the partition, through a Speculation: its writes are kept
// aside, its reads see them. What it did is then proposed as one EFFECTS
// entry: the stored values and sub-keys it wrote (the same intents a
// PREPARE keeps), with the version every key it read or wrote had in the
// view. The entry applies them only if none of those keys changed since,
// so the script's reads and writes happen at one point of the log, as if
// it had run there; otherwise it changes nothing and the script runs
// again on a newer view.
//
// Invariants:
//   - Replicas never run the script: they apply its effects, so a script's
//     randomness, clock and time limit cannot make replicas diverge.
//   - An EFFECTS entry applies all of its intents or none (a key changed,
//     or a transaction holds a lock on one: Refuse, as a one-partition
//     EXEC).
//   - A collection the script created gets its version when the entry
//     applies (kv.Writer.NewVersion), never the view's: sub-keys a later
//     entry left under some version cannot mix with the script's.

// opEffects applies a speculation's writes if the keys it touched are
// unchanged.
const opEffects = "txn.effects"

// specVersion is the version a speculation gives a collection it creates,
// far above any log index: the EFFECTS entry replaces it by a real one.
const specVersion = uint64(1) << 62

// Speculation evaluates commands against a frozen view of one partition
// without changing it. It is a kv.Writer; Effects then describes what the
// commands did.
type Speculation struct {
	r       Reader
	ov      *overlay
	touched []keyMode // in the order first met
	seen    map[string]int
	seed    uint64
}

// Speculate starts a speculation over r, which must not change while the
// speculation is in use (a snapshot).
func Speculate(r Reader) *Speculation {
	s := &Speculation{r: r, seen: map[string]int{}, seed: rand.Uint64()}
	s.ov = &overlay{base: r, vers: specVersions{}, writes: map[string]*written{}, subs: map[string]map[string]*written{}}
	return s
}

type specVersions struct{}

func (specVersions) NewVersion([]byte) (uint64, error) { return specVersion, nil }

func (s *Speculation) touch(k []byte, write bool) {
	if i, ok := s.seen[string(k)]; ok {
		s.touched[i].write = s.touched[i].write || write
		return
	}
	s.seen[string(k)] = len(s.touched)
	s.touched = append(s.touched, keyMode{key: bytes.Clone(k), write: write})
}

// Get implements kv.Reader.
func (s *Speculation) Get(k []byte) ([]byte, bool, error) {
	s.touch(k, false)
	return s.ov.Get(k)
}

// GetSub implements kv.Reader.
func (s *Speculation) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	s.touch(k, false)
	return s.ov.GetSub(k, ver, sub)
}

// ScanSub implements kv.Reader.
func (s *Speculation) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	s.touch(k, false)
	return s.ov.ScanSub(k, ver, from, reverse, fn)
}

// NowMS implements kv.Reader: the view's time.
func (s *Speculation) NowMS() int64 { return s.r.NowMS() }

// Seed implements kv.Seeder: the script runs once, so its random choices
// need not be the same anywhere else.
func (s *Speculation) Seed() uint64 {
	s.seed = s.seed*6364136223846793005 + 1442695040888963407
	return s.seed
}

// Put implements kv.Writer.
func (s *Speculation) Put(k, v []byte, created bool) error {
	s.touch(k, true)
	return s.ov.Put(k, v, created)
}

// PutBlind implements kv.Writer.
func (s *Speculation) PutBlind(k, v []byte) error {
	s.touch(k, true)
	return s.ov.PutBlind(k, v)
}

// Del implements kv.Writer.
func (s *Speculation) Del(k []byte) error {
	s.touch(k, true)
	return s.ov.Del(k)
}

// PutSub implements kv.Writer.
func (s *Speculation) PutSub(k []byte, ver uint64, sub, v []byte) error {
	s.touch(k, true)
	return s.ov.PutSub(k, ver, sub, v)
}

// DelSub implements kv.Writer.
func (s *Speculation) DelSub(k []byte, ver uint64, sub []byte) error {
	s.touch(k, true)
	return s.ov.DelSub(k, ver, sub)
}

// NewVersion implements kv.Writer.
func (s *Speculation) NewVersion(k []byte) (uint64, error) { return s.ov.NewVersion(k) }

// Wrote reports whether anything was written.
func (s *Speculation) Wrote() bool { return len(s.ov.writes) > 0 || len(s.ov.subs) > 0 }

// Written lists the keys written so far, in the order first touched.
func (s *Speculation) Written() [][]byte {
	var out [][]byte
	for _, k := range s.touched {
		if k.write {
			out = append(out, k.key)
		}
	}
	return out
}

// Blockers are the transactions holding locks that stand in the way of
// the keys touched so far: a reply read past them may be wrong, and an
// EFFECTS entry would be refused.
func (s *Speculation) Blockers() ([]Ref, error) { return lockHolders(s.r, s.touched) }

// WatchesHold reports whether every watched key has its version in the
// view (a transaction's WATCH).
func (s *Speculation) WatchesHold(watches []Watch) (bool, error) { return watchesHold(s.r, watches) }

// Effects encodes the speculation's writes as the argument of an EFFECTS
// entry (EffectsArgs), nil if it wrote nothing. The entry also checks
// watches, which must hold in the view (WatchesHold).
func (s *Speculation) Effects(watches []Watch) ([]byte, error) {
	if !s.Wrote() {
		return nil, nil
	}
	watched := map[string]bool{}
	for _, w := range watches {
		watched[string(w.Key)] = true
	}
	watches = slices.Clone(watches)
	pt := part{}
	for _, k := range s.touched {
		v, err := liveVersion(s.r, k.key)
		if err != nil {
			return nil, err
		}
		if !watched[string(k.key)] {
			watches = append(watches, Watch{Key: k.key, Version: v})
		}
		if !k.write {
			continue
		}
		pk := partKey{key: k.key, write: true, intent: intentNone}
		if w := s.ov.writes[string(k.key)]; w != nil {
			pk.intent, pk.value = intentPut, w.value
			if w.deleted {
				pk.intent, pk.value = intentDel, nil
			}
		}
		pt.keys = append(pt.keys, pk)
		pt.keys = append(pt.keys, s.ov.subIntents(k.key)...)
	}
	return encodeBody(nil, watches, nil).Bytes(pt.encode()), nil
}

// EffectsArgs is the EFFECTS entry for effects (Speculation.Effects).
func EffectsArgs(effects []byte) [][]byte { return [][]byte{[]byte(opEffects), effects} }

// applyEffects applies a speculation's intents if every key it touched
// still has the version it had in the speculation's view.
func applyEffects(s Store, body []byte, out []byte) ([]byte, error) {
	d := codec.NewDecoder(body)
	watches, cmds := decodeBody(&d)
	pt, err := decodePart(d.Bytes())
	if d.Done() != nil || err != nil || len(cmds) != 0 || !validEffects(pt.keys) {
		return signal(out, failure.BadOp), nil
	}
	modes := make([]keyMode, len(watches))
	for i, w := range watches {
		modes[i] = keyMode{key: w.Key, write: true}
	}
	if out, foreign := foreignModes(s, modes, out); foreign {
		return out, nil
	}
	holders, err := lockHolders(s, modes)
	if err != nil {
		return out, err
	}
	if len(holders) > 0 {
		s.Refuse()
		return LockedReply(out, holders), nil
	}
	if ok, err := watchesHold(s, watches); err != nil || !ok {
		return signal(out, failure.WatchFailed), err
	}
	if len(pt.keys) > 0 && !watched(watches, pt.keys) {
		return signal(out, failure.BadOp), nil
	}
	keys, err := settleVersions(s, pt.keys)
	if err != nil {
		return out, err
	}
	if err := applyIntents(s, keys); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// validEffects checks what an EFFECTS entry would write: stored values
// well formed, sub-key intents after their key's.
func validEffects(keys []partKey) bool {
	for _, k := range keys {
		switch {
		case len(k.key) == 0:
			return false
		case k.intent == intentPut && !kv.ValidStored(k.value):
			return false
		case k.intent == intentSubPut || k.intent == intentSubDel:
		case k.intent != intentPut && k.intent != intentDel && k.intent != intentNone:
			return false
		}
	}
	return true
}

// watched reports whether every key written is among the watches: an
// entry must not write what it did not check.
func watched(watches []Watch, keys []partKey) bool {
	set := map[string]bool{}
	for _, w := range watches {
		set[string(w.Key)] = true
	}
	for _, k := range keys {
		if k.intent != intentSubPut && k.intent != intentSubDel && !set[string(k.key)] {
			return false
		}
	}
	return true
}

// settleVersions gives each collection the speculation created a real
// version, and drops the sub-keys of any it created and let go again.
func settleVersions(s Store, keys []partKey) ([]partKey, error) {
	out := make([]partKey, 0, len(keys))
	var from, to uint64 // the owner's speculative version and its real one
	for _, k := range keys {
		if k.intent == intentSubPut || k.intent == intentSubDel {
			ver := binary.BigEndian.Uint64(k.key)
			switch {
			case ver < specVersion:
				out = append(out, k)
			case ver == from && to != 0:
				k.key = append(binary.BigEndian.AppendUint64(nil, to), k.key[8:]...)
				out = append(out, k)
			}
			continue
		}
		from, to = 0, 0
		if ver, ok := kv.CollectionVersion(k.value); ok && k.intent == intentPut && ver >= specVersion {
			nv, err := s.NewVersion(k.key)
			if err != nil {
				return nil, err
			}
			from, to = ver, nv
			k.value = kv.WithCollectionVersion(k.value, nv)
		}
		out = append(out, k)
	}
	return out, nil
}

// applyIntents writes committed intents: each key's, then its sub-keys'.
func applyIntents(s Store, keys []partKey) error {
	var owner []byte // the key the sub-key intents that follow belong to
	for _, k := range keys {
		var err error
		switch k.intent {
		case intentSubPut:
			err = s.PutSub(owner, binary.BigEndian.Uint64(k.key), k.key[8:], k.value)
		case intentSubDel:
			err = s.DelSub(owner, binary.BigEndian.Uint64(k.key), k.key[8:])
		case intentPut:
			owner = k.key
			// Blind, as a plain SET is: the old value is not needed,
			// and reading it was a sixteenth of a node's CPU under
			// cross-partition MSET (kv.Writer.PutBlind).
			err = s.PutBlind(k.key, k.value)
		case intentDel:
			owner = k.key
			var exists bool
			if _, exists, err = s.Get(k.key); err == nil && exists {
				err = s.Del(k.key)
			}
		default:
			owner = k.key
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Script runs a script on group's leader and replicates what it did
// (effects.go's top): run is the read that runs it there, which answers
// [reply, effects] (ScriptResult). When the script wrote, its effects are
// proposed; when a key it touched changed meanwhile, or a transaction
// held one, it runs again on a newer view. The reply is the script's once
// its effects are applied.
func (c *Coordinator) Script(ctx context.Context, group uint64, run [][]byte) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		reply, err := c.cl.Read(ctx, group, run)
		if err != nil {
			return nil, err
		}
		if c.lockedOut(ctx, group, reply) {
			if !c.backoff(ctx, attempt) {
				return nil, &GaveUpError{Attempts: attempt}
			}
			continue
		}
		out, effects, ok := splitScriptResult(reply)
		if !ok {
			return nil, &InternalError{Msg: "malformed script result"}
		}
		if len(effects) == 0 {
			return out, nil
		}
		applied, err := c.cl.Write(ctx, group, EffectsArgs(effects))
		if err != nil {
			return nil, err
		}
		if !c.lockedOut(ctx, group, applied) && !failure.WatchFailed.Is(applied) {
			if v, _, err := resp.ParseValue(applied); err != nil || v.Kind != '+' {
				return nil, &InternalError{Msg: "effects not applied"}
			}
			return out, nil
		}
		if !c.backoff(ctx, attempt) {
			return nil, &GaveUpError{Attempts: attempt}
		}
	}
}

// lockedOut reports whether reply names transactions whose locks stood in
// the way, and has them resolved.
func (c *Coordinator) lockedOut(ctx context.Context, group uint64, reply []byte) bool {
	holders, ok := ParseLocked(reply)
	for _, h := range holders {
		c.resolver.Push(ctx, group, h, false)
	}
	return ok
}

// ScriptResult is what the read that runs a script answers: its reply and
// its effects (nil: it wrote nothing).
func ScriptResult(out, reply, effects []byte) []byte {
	out = resp.AppendArrayHeader(out, 2)
	return resp.AppendBulk(resp.AppendBulk(out, reply), effects)
}

func splitScriptResult(b []byte) (reply, effects []byte, ok bool) {
	elems, ok := SplitArray(b)
	if !ok || len(elems) != 2 {
		return nil, nil, false
	}
	r, _, err1 := resp.ParseValue(elems[0])
	e, _, err2 := resp.ParseValue(elems[1])
	if err1 != nil || err2 != nil || r.Kind != '$' || e.Kind != '$' {
		return nil, nil, false
	}
	return r.Str, e.Str, true
}
