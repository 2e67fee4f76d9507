package rdb

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// RDB object types (src/rdb.h) a DUMP payload starts with.
const (
	typeString          = 0
	typeList            = 1
	typeSet             = 2
	typeZSet            = 3 // scores as text
	typeHash            = 4
	typeZSet2           = 5 // scores as binary doubles
	typeModule          = 6
	typeModule2         = 7
	typeHashZipmap      = 9
	typeListZiplist     = 10
	typeSetIntset       = 11
	typeZSetZiplist     = 12
	typeHashZiplist     = 13
	typeListQuicklist   = 14 // nodes are ziplists
	typeStreamListpacks = 15
	typeHashListpack    = 16
	typeZSetListpack    = 17
	typeListQuicklist2  = 18 // nodes are listpacks or plain elements
	typeStream2         = 19
	typeSetListpack     = 20 // Redis 7.2
	typeStream3         = 21 // Redis 7.2
)

// A quicklist node's container (src/quicklist.h): one element stored
// as is, or a listpack of elements.
const (
	containerPlain  = 1
	containerPacked = 2
)

// What one element costs beyond its bytes: its slice header (a Pair or
// ScoredMember is two), the slack of a growing slice, and the index a
// duplicate check sorts.
const elemCost = 64

func (d *decoder) value(t byte) (*Value, error) {
	switch t {
	case typeString:
		s, owned, err := d.str()
		if err != nil {
			return nil, err
		}
		if s, err = d.keep(s, owned); err != nil {
			return nil, err
		}
		return &Value{Kind: String, Str: s}, nil
	case typeList, typeSet:
		return d.stringList(t)
	case typeZSet, typeZSet2:
		return d.zset(t)
	case typeHash:
		return d.hash()
	case typeListQuicklist, typeListQuicklist2:
		return d.quicklist(t)
	case typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist,
		typeHashZiplist, typeHashListpack, typeZSetListpack, typeSetListpack:
		return d.packedValue(t)
	case typeModule, typeModule2, typeStreamListpacks, typeStream2, typeStream3:
		return nil, ErrUnsupportedType
	}
	return nil, d.errorf("unknown object type %d", t)
}

// elem turns a packed entry into bytes the Value can keep, charging it
// as one more element of a collection whose size was not known ahead.
func (d *decoder) elem(e packed) ([]byte, error) {
	if err := d.charge(elemCost); err != nil {
		return nil, err
	}
	if e.isInt {
		return d.formatInt(e.n)
	}
	return d.copy(e.s)
}

// next reads one string of a collection whose count was charged.
func (d *decoder) next() ([]byte, error) {
	s, owned, err := d.str()
	if err != nil {
		return nil, err
	}
	return d.keep(s, owned)
}

// items reads a collection's count, each item taking at least least
// bytes, and charges its elements before anything is sized by it.
func (d *decoder) items(least int) (int, error) {
	n, err := d.count(least)
	if err == nil {
		err = d.charge(uint64(n) * elemCost)
	}
	return n, err
}

// RDB_TYPE_LIST and RDB_TYPE_SET: a count, then each element.
func (d *decoder) stringList(t byte) (*Value, error) {
	n, err := d.items(1)
	if err != nil {
		return nil, err
	}
	elems := make([][]byte, 0, n)
	for range n {
		s, err := d.next()
		if err != nil {
			return nil, err
		}
		elems = append(elems, s)
	}
	if t == typeList {
		return &Value{Kind: List, Elems: elems}, nil
	}
	return d.set(elems)
}

func (d *decoder) set(elems [][]byte) (*Value, error) {
	if dupAt(len(elems), func(i int) []byte { return elems[i] }) {
		return nil, d.errorf("duplicate set members")
	}
	return &Value{Kind: Set, Elems: elems}, nil
}

// RDB_TYPE_ZSET and RDB_TYPE_ZSET_2: a count, then each member and its
// score, as text (a length byte, or 253/254/255 for NaN/+inf/-inf) or as
// a little-endian IEEE 754 double.
func (d *decoder) zset(t byte) (*Value, error) {
	least := 2 // a member and a score of at least a byte each
	if t == typeZSet2 {
		least = 1 + 8
	}
	n, err := d.items(least)
	if err != nil {
		return nil, err
	}
	scores := make([]ScoredMember, 0, n)
	for range n {
		m, err := d.next()
		if err != nil {
			return nil, err
		}
		var score float64
		if t == typeZSet2 {
			p, err := d.take(8)
			if err != nil {
				return nil, err
			}
			score = math.Float64frombits(binary.LittleEndian.Uint64(p))
		} else if score, err = d.textScore(); err != nil {
			return nil, err
		}
		if math.IsNaN(score) {
			return nil, d.errorf("NaN score")
		}
		scores = append(scores, ScoredMember{Member: m, Score: score})
	}
	return d.zsetValue(scores)
}

func (d *decoder) textScore() (float64, error) {
	n, err := d.byte()
	if err != nil {
		return 0, err
	}
	switch n {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	p, err := d.take(uint64(n))
	if err != nil {
		return 0, err
	}
	return d.parseScore(p)
}

// parseScore reads a score Redis wrote as text ("%.17g", or "inf"). It
// is stricter than Redis's strtod, which takes the longest number at the
// start and ignores the rest; a value out of range is taken as the
// infinity strtod would give.
func (d *decoder) parseScore(p []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(p), 64)
	if err != nil && !isRangeErr(err) {
		return 0, d.errorf("score %q is not a number", p)
	}
	return f, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func (d *decoder) zsetValue(scores []ScoredMember) (*Value, error) {
	if dupAt(len(scores), func(i int) []byte { return scores[i].Member }) {
		return nil, d.errorf("duplicate sorted set members")
	}
	return &Value{Kind: ZSet, Scores: scores}, nil
}

// RDB_TYPE_HASH: a count, then each field and its value.
func (d *decoder) hash() (*Value, error) {
	n, err := d.items(2)
	if err != nil {
		return nil, err
	}
	pairs := make([]Pair, 0, n)
	for range n {
		f, err := d.next()
		if err != nil {
			return nil, err
		}
		v, err := d.next()
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, Pair{Field: f, Value: v})
	}
	return d.hashValue(pairs)
}

func (d *decoder) hashValue(pairs []Pair) (*Value, error) {
	if dupAt(len(pairs), func(i int) []byte { return pairs[i].Field }) {
		return nil, d.errorf("duplicate hash fields")
	}
	return &Value{Kind: Hash, Pairs: pairs}, nil
}

// Quicklists: a node count, then each node as a string, preceded in
// RDB_TYPE_LIST_QUICKLIST_2 by its container. A packed node is a
// listpack (a ziplist in RDB_TYPE_LIST_QUICKLIST), maybe LZF-compressed
// like any string; a plain node is one element. Redis skips empty packed
// nodes but refuses a list that ends up empty.
func (d *decoder) quicklist(t byte) (*Value, error) {
	nodes, err := d.count(2)
	if err != nil {
		return nil, err
	}
	var elems [][]byte
	add := func(e packed) error {
		s, err := d.elem(e)
		elems = append(elems, s)
		return err
	}
	for range nodes {
		container := uint64(containerPacked)
		if t == typeListQuicklist2 {
			if container, err = d.plainLength(); err != nil {
				return nil, err
			}
			if container != containerPlain && container != containerPacked {
				return nil, d.errorf("quicklist container %d is invalid", container)
			}
		}
		node, owned, err := d.str()
		if err != nil {
			return nil, err
		}
		if len(node) == 0 {
			return nil, d.errorf("empty quicklist node")
		}
		switch {
		case container == containerPlain:
			if err = d.charge(elemCost); err == nil {
				node, err = d.keep(node, owned)
				elems = append(elems, node)
			}
		case t == typeListQuicklist2:
			err = d.listpack(node, add)
		default:
			err = d.ziplist(node, add)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(elems) == 0 {
		return nil, d.errorf("empty collection")
	}
	return &Value{Kind: List, Elems: elems}, nil
}

// The types stored as one blob: a zipmap, ziplist, intset or listpack
// holding the whole collection.
func (d *decoder) packedValue(t byte) (*Value, error) {
	blob, _, err := d.str()
	if err != nil {
		return nil, err
	}
	var elems [][]byte
	add := func(e packed) error {
		s, err := d.elem(e)
		elems = append(elems, s)
		return err
	}
	var pairs []Pair
	var scores []ScoredMember
	isHash := t == typeHashZipmap || t == typeHashZiplist || t == typeHashListpack
	// The paired encodings alternate field and value, or member and
	// score; i counts the entries seen.
	i := 0
	addPair := func(e packed) error {
		i++
		if i%2 == 1 {
			return add(e)
		}
		f := elems[len(elems)-1]
		elems = elems[:len(elems)-1]
		if isHash {
			v, err := d.elem(e)
			pairs = append(pairs, Pair{Field: f, Value: v})
			return err
		}
		score := float64(e.n)
		if !e.isInt {
			var err error
			if score, err = d.parseScore(e.s); err != nil {
				return err
			}
		}
		if math.IsNaN(score) {
			return d.errorf("NaN score")
		}
		scores = append(scores, ScoredMember{Member: f, Score: score})
		return nil
	}
	switch t {
	case typeHashZipmap:
		err = d.zipmap(blob, func(f, v []byte) error {
			if err := addPair(packed{s: f}); err != nil {
				return err
			}
			return addPair(packed{s: v})
		})
	case typeSetIntset:
		err = d.intset(blob, add)
	case typeListZiplist:
		err = d.ziplist(blob, add)
	case typeZSetZiplist, typeHashZiplist:
		err = d.ziplist(blob, addPair)
	case typeSetListpack:
		err = d.listpack(blob, add)
	default:
		err = d.listpack(blob, addPair)
	}
	if err != nil {
		return nil, err
	}
	if i%2 != 0 {
		return nil, d.errorf("odd number of entries in a paired encoding")
	}
	switch t {
	case typeListZiplist:
		if len(elems) == 0 {
			return nil, d.errorf("empty collection")
		}
		return &Value{Kind: List, Elems: elems}, nil
	case typeSetIntset: // the intset checked order, so no duplicates
		return &Value{Kind: Set, Elems: elems}, nil
	case typeSetListpack:
		if len(elems) == 0 {
			return nil, d.errorf("empty collection")
		}
		return d.set(elems)
	case typeZSetZiplist, typeZSetListpack:
		if len(scores) == 0 {
			return nil, d.errorf("empty collection")
		}
		return d.zsetValue(scores)
	}
	if len(pairs) == 0 {
		return nil, d.errorf("empty collection")
	}
	return d.hashValue(pairs)
}

// dupAt reports whether two of n keys are equal. Sorting an index costs
// a few bytes a key, where a map would copy every key.
func dupAt(n int, key func(int) []byte) bool {
	if n < 2 {
		return false
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(key(a), key(b)) })
	for i := 1; i < n; i++ {
		if bytes.Equal(key(idx[i-1]), key(idx[i])) {
			return true
		}
	}
	return false
}
