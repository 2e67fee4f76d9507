package kv

import (
	"slices"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/resp"
)

// Sets: a member is a sub-key (hashedSub, as a hash field) with an empty
// value. Commands over several sets need them in one partition (hash
// tags); across partitions they answer CROSSSLOT, as in Redis Cluster.
func init() {
	register(command.Set,
		writer("sadd", -3, 1, 1, 1, evalSadd),
		writer("srem", -3, 1, 1, 1, evalSrem),
		writer("spop", -2, 1, 1, 1, evalSpop),
		writer("smove", 4, 1, 2, 1, evalSmove),
		writer("sinterstore", -3, 1, -1, 1, evalSstore(setInter)),
		writer("sunionstore", -3, 1, -1, 1, evalSstore(setUnion)),
		writer("sdiffstore", -3, 1, -1, 1, evalSstore(setDiff)),
		reader("smembers", 2, 1, 1, 1, evalSmembers),
		reader("sismember", 3, 1, 1, 1, evalSismember),
		reader("smismember", -3, 1, 1, 1, evalSmismember),
		reader("scard", 2, 1, 1, 1, evalScard),
		reader("srandmember", -2, 1, 1, 1, evalRandMember(typeSet, 0, "", nil)),
		reader("sscan", -3, 1, 1, 1, evalSscan),
		reader("sinter", -2, 1, -1, 1, evalSop(setInter)),
		reader("sunion", -2, 1, -1, 1, evalSop(setUnion)),
		reader("sdiff", -2, 1, -1, 1, evalSop(setDiff)),
	)
}

func isMember(r Reader, key []byte, s coll, m []byte) (bool, error) {
	if !s.ok {
		return false, nil
	}
	_, ok, err := r.GetSub(key, s.ver, hashedSub(m))
	return ok, err
}

// sadd adds m to s (created already) and reports whether it was new.
func sadd(w Writer, key []byte, s *coll, m []byte) (bool, error) {
	sub := hashedSub(m)
	_, ok, err := w.GetSub(key, s.ver, sub)
	if err != nil || ok {
		return false, err
	}
	s.n++
	return true, w.PutSub(key, s.ver, sub, nil)
}

// srem removes m from s and reports whether it was there.
func srem(w Writer, key []byte, s *coll, m []byte) (bool, error) {
	if !s.ok || s.n == 0 {
		return false, nil
	}
	sub := hashedSub(m)
	_, ok, err := w.GetSub(key, s.ver, sub)
	if err != nil || !ok {
		return false, err
	}
	s.n--
	return true, w.DelSub(key, s.ver, sub)
}

func evalSadd(w Writer, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(w, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	if err := s.create(w, args[1], typeSet); err != nil {
		return out, err
	}
	var n int64
	for _, m := range args[2:] {
		added, err := sadd(w, args[1], &s, m)
		if err != nil {
			return out, err
		}
		n += b2i(added)
	}
	return resp.AppendInt(out, n), s.save(w, args[1])
}

func evalSrem(w Writer, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(w, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	var n int64
	for _, m := range args[2:] {
		removed, err := srem(w, args[1], &s, m)
		if err != nil {
			return out, err
		}
		n += b2i(removed)
	}
	if n > 0 {
		err = s.save(w, args[1])
	}
	return resp.AppendInt(out, n), err
}

// members lists a set's members (copies), in sub-key order.
func members(r Reader, key []byte, s coll) ([][]byte, error) {
	if !s.ok {
		return nil, nil
	}
	var out [][]byte
	err := r.ScanSub(key, s.ver, nil, false, func(sub, _ []byte) bool {
		out = append(out, append([]byte(nil), fieldOf(sub)...))
		return true
	})
	return out, err
}

func appendMembers(out []byte, ms [][]byte) []byte {
	out = resp.AppendArrayHeader(out, len(ms))
	for _, m := range ms {
		out = resp.AppendBulk(out, m)
	}
	return out
}

func evalSmembers(r Reader, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(r, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	ms, err := members(r, args[1], s)
	if err != nil {
		return out, err
	}
	return appendMembers(out, ms), nil
}

func evalSismember(r Reader, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(r, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	ok, err := isMember(r, args[1], s, args[2])
	return resp.AppendInt(out, b2i(ok)), err
}

func evalSmismember(r Reader, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(r, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	out = resp.AppendArrayHeader(out, len(args)-2)
	for _, m := range args[2:] {
		ok, err := isMember(r, args[1], s, m)
		if err != nil {
			return out, err
		}
		out = resp.AppendInt(out, b2i(ok))
	}
	return out, nil
}

func evalScard(r Reader, args [][]byte, out []byte) ([]byte, error) {
	s, err := loadColl(r, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	return resp.AppendInt(out, int64(s.n)), nil
}

const errNotPositive = "ERR value is out of range, must be positive"

// popCount reads the optional count of LPOP, RPOP, SPOP, ZPOPMIN and
// ZPOPMAX (KEY [COUNT]): whether one was given and its value (1 if not),
// or Redis's error.
func popCount(args [][]byte) (has bool, n int64, msg string) {
	switch {
	case len(args) > 3:
		return false, 0, ErrSyntax
	case len(args) < 3:
		return false, 1, ""
	}
	n, ok := ParseInt(args[2])
	if !ok || n < 0 {
		return true, 0, errNotPositive
	}
	return true, n, ""
}

// evalSpop removes random members. Its choice is a function of the
// entry's time and the set, so every replica removes the same ones.
func evalSpop(w Writer, args [][]byte, out []byte) ([]byte, error) {
	hasCount, count, msg := popCount(args)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	s, err := loadColl(w, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	if !s.ok || count == 0 {
		if hasCount {
			return resp.AppendArrayHeader(out, 0), nil
		}
		return resp.AppendNull(out), nil
	}
	m := seedOf(w, args[1])
	picks, err := pickRandom(w, args[1], s, 0, &m, uint64(count), true)
	if err != nil {
		return out, err
	}
	for _, p := range picks {
		if _, err := srem(w, args[1], &s, p.field); err != nil {
			return out, err
		}
	}
	if err := s.save(w, args[1]); err != nil {
		return out, err
	}
	if !hasCount {
		if len(picks) == 0 {
			return resp.AppendNull(out), nil
		}
		return resp.AppendBulk(out, picks[0].field), nil
	}
	out = resp.AppendArrayHeader(out, len(picks))
	for _, p := range picks {
		out = resp.AppendBulk(out, p.field)
	}
	return out, nil
}

// distinctPositions picks min(count, n) distinct positions below n.
func distinctPositions(m mix, n, count uint64) []uint64 {
	var at []uint64
	if count >= n {
		for i := uint64(0); i < n; i++ {
			at = append(at, i)
		}
		return at
	}
	seen := map[uint64]bool{}
	for uint64(len(at)) < count {
		if i := m.next() % n; !seen[i] {
			seen[i] = true
			at = append(at, i)
		}
	}
	return at
}

func evalSmove(w Writer, args [][]byte, out []byte) ([]byte, error) {
	src, err := loadColl(w, args[1], typeSet)
	if err != nil || !src.ok && !src.wrong { // no source: 0, whatever dst holds (as Redis)
		return resp.AppendInt(out, 0), err
	}
	if src.wrong {
		return wrongOr(out, nil)
	}
	dst, err := loadColl(w, args[2], typeSet)
	if err != nil || dst.wrong {
		return wrongOr(out, err)
	}
	in, err := isMember(w, args[1], src, args[3])
	if err != nil || !in {
		return resp.AppendInt(out, 0), err
	}
	if string(args[1]) == string(args[2]) {
		return resp.AppendInt(out, 1), nil
	}
	if _, err := srem(w, args[1], &src, args[3]); err != nil {
		return out, err
	}
	if err := src.save(w, args[1]); err != nil {
		return out, err
	}
	if err := dst.create(w, args[2], typeSet); err != nil {
		return out, err
	}
	added, err := sadd(w, args[2], &dst, args[3])
	if err != nil || !added {
		// Already a member: the destination is unchanged, so its
		// version (WATCH) is too, as Redis leaves it.
		return resp.AppendInt(out, 1), err
	}
	return resp.AppendInt(out, 1), dst.save(w, args[2])
}

type setOp int

const (
	setInter setOp = iota
	setUnion
	setDiff
)

// combine evaluates op over the sets at keys; a key of another type is
// WRONGTYPE (wrong=true), a missing key the empty set. The result is in
// byte order.
func combine(r Reader, keys [][]byte, op setOp) (res [][]byte, wrong bool, err error) {
	var acc map[string]bool
	for i, k := range keys {
		s, err := loadColl(r, k, typeSet)
		if err != nil || s.wrong {
			return nil, s.wrong, err
		}
		ms, err := members(r, k, s)
		if err != nil {
			return nil, false, err
		}
		set := make(map[string]bool, len(ms))
		for _, m := range ms {
			set[string(m)] = true
		}
		switch {
		case i == 0:
			acc = set
		case op == setInter:
			for m := range acc {
				if !set[m] {
					delete(acc, m)
				}
			}
		case op == setUnion:
			for m := range set {
				acc[m] = true
			}
		case op == setDiff:
			for m := range set {
				delete(acc, m)
			}
		}
	}
	for m := range acc {
		res = append(res, []byte(m))
	}
	slices.SortFunc(res, func(a, b []byte) int { return slices.Compare(a, b) })
	return res, false, nil
}

func evalSop(op setOp) readFunc {
	return func(r Reader, args [][]byte, out []byte) ([]byte, error) {
		res, wrong, err := combine(r, args[1:], op)
		if err != nil || wrong {
			return wrongOr(out, err)
		}
		return appendMembers(out, res), nil
	}
}

// evalSstore stores the result at the first key, whatever it held (an
// empty result deletes it), and answers its size.
func evalSstore(op setOp) writeFunc {
	return func(w Writer, args [][]byte, out []byte) ([]byte, error) {
		res, wrong, err := combine(w, args[2:], op)
		if err != nil || wrong {
			return wrongOr(out, err)
		}
		if err := delKey(w, args[1]); err != nil {
			return out, err
		}
		d := coll{}
		if len(res) > 0 {
			if err := d.create(w, args[1], typeSet); err != nil {
				return out, err
			}
			for _, m := range res {
				if _, err := sadd(w, args[1], &d, m); err != nil {
					return out, err
				}
			}
		}
		return resp.AppendInt(out, int64(len(res))), d.save(w, args[1])
	}
}

func evalSscan(r Reader, args [][]byte, out []byte) ([]byte, error) {
	a, msg := parseScan(args[2:], false, false)
	if msg != "" {
		return appendErr(out, msg), nil
	}
	s, err := loadColl(r, args[1], typeSet)
	if err != nil || s.wrong {
		return wrongOr(out, err)
	}
	a.noValues = true
	return scanHashed(r, args[1], s, a, out)
}
