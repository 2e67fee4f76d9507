package script

import (
	"encoding/binary"
	"slices"
)

// scratch is a private store a cross-partition script runs against
// (RunOver): the copies of its declared keys, in memory, with every
// collection's sub-keys kept in order so a scan costs what it returns,
// not what the collection holds. It has no locks and no history (every
// version is 0), and its clock is frozen, as a script's is in Redis.
type scratch struct {
	now   int64
	keys  map[string][]byte
	colls map[string]*subKeys // by collection (key, version)
	next  uint64              // the last version given to a collection
}

// subKeys are one collection's sub-keys. A run of inserts out of order
// (a RESTORE lays a sorted set down in score order, not sub-key order)
// marks names stale instead of shifting it each time; the next scan sorts
// once. So building a copy costs n log n, not n² (a million members took
// minutes).
type subKeys struct {
	names    []string // sorted, unless unsorted
	vals     map[string][]byte
	unsorted bool // names is stale: sorted() rebuilds it from vals
}

func (c *subKeys) sorted() []string {
	if c.unsorted {
		c.names = c.names[:0]
		for n := range c.vals {
			c.names = append(c.names, n)
		}
		slices.Sort(c.names)
		c.unsorted = false
	}
	return c.names
}

func newScratch(nowMS int64) *scratch {
	return &scratch{now: nowMS, keys: map[string][]byte{}, colls: map[string]*subKeys{}}
}

func collName(k []byte, ver uint64) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(k)))
	return string(binary.BigEndian.AppendUint64(append(b, k...), ver))
}

func (s *scratch) Get(k []byte) ([]byte, bool, error) {
	v, ok := s.keys[string(k)]
	return v, ok, nil
}

func (s *scratch) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	c := s.colls[collName(k, ver)]
	if c == nil {
		return nil, false, nil
	}
	v, ok := c.vals[string(sub)]
	return v, ok, nil
}

func (s *scratch) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	c := s.colls[collName(k, ver)]
	if c == nil {
		return nil
	}
	names := c.sorted()
	if !reverse {
		i := 0
		if from != nil {
			i, _ = slices.BinarySearch(names, string(from))
		}
		for ; i < len(names); i++ {
			if !fn([]byte(names[i]), c.vals[names[i]]) {
				return nil
			}
		}
		return nil
	}
	i := len(names) - 1
	if from != nil {
		j, found := slices.BinarySearch(names, string(from))
		if i = j - 1; found {
			i = j
		}
	}
	for ; i >= 0; i-- {
		if !fn([]byte(names[i]), c.vals[names[i]]) {
			return nil
		}
	}
	return nil
}

func (s *scratch) NowMS() int64 { return s.now }

func (s *scratch) Put(k, v []byte, _ bool) error {
	s.keys[string(k)] = slices.Clone(v)
	return nil
}

func (s *scratch) PutBlind(k, v []byte) error { return s.Put(k, v, false) }

func (s *scratch) Del(k []byte) error {
	delete(s.keys, string(k))
	return nil
}

func (s *scratch) PutSub(k []byte, ver uint64, sub, v []byte) error {
	id := collName(k, ver)
	c := s.colls[id]
	if c == nil {
		c = &subKeys{vals: map[string][]byte{}}
		s.colls[id] = c
	}
	if _, ok := c.vals[string(sub)]; !ok && !c.unsorted {
		// In place while that is cheap (a short list, or the end of a
		// long one); else sorted on the next scan.
		if i, _ := slices.BinarySearch(c.names, string(sub)); i == len(c.names) || len(c.names) <= 64 {
			c.names = slices.Insert(c.names, i, string(sub))
		} else {
			c.unsorted = true
		}
	}
	c.vals[string(sub)] = slices.Clone(v)
	return nil
}

func (s *scratch) DelSub(k []byte, ver uint64, sub []byte) error {
	c := s.colls[collName(k, ver)]
	if c == nil {
		return nil
	}
	if _, ok := c.vals[string(sub)]; ok {
		delete(c.vals, string(sub))
		if !c.unsorted {
			i, _ := slices.BinarySearch(c.names, string(sub))
			c.names = slices.Delete(c.names, i, i+1)
		}
	}
	return nil
}

// NewVersion: one counter for the whole store is past every version any
// key used.
func (s *scratch) NewVersion([]byte) (uint64, error) {
	s.next++
	return s.next, nil
}

// The transaction layer's view of it (txn.Reader): nothing is locked,
// nothing has a history.
func (s *scratch) Version([]byte) (uint64, error)            { return 0, nil }
func (s *scratch) Applied() (uint64, error)                  { return 0, nil }
func (s *scratch) TxnGet(byte, []byte) ([]byte, bool, error) { return nil, false, nil }
func (s *scratch) NoLocks() bool                             { return true }
