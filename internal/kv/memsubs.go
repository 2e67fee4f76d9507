package kv

import (
	"encoding/binary"
	"slices"
	"strings"
)

// MemSubs keeps collections' sub-keys in memory, as the storage engine
// keeps them on disk (by key, version, sub-key), for the in-memory stores
// that tests and models run commands against. The zero value is empty and
// ready; it is not safe for concurrent use.
type MemSubs struct {
	m map[string][]byte
}

func memSubPrefix(k []byte, ver uint64) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(k)))
	return string(binary.BigEndian.AppendUint64(append(b, k...), ver))
}

// GetSub implements Reader.
func (s *MemSubs) GetSub(k []byte, ver uint64, sub []byte) ([]byte, bool, error) {
	v, ok := s.m[memSubPrefix(k, ver)+string(sub)]
	return v, ok, nil
}

// ScanSub implements Reader.
func (s *MemSubs) ScanSub(k []byte, ver uint64, from []byte, reverse bool, fn func(sub, v []byte) bool) error {
	p := memSubPrefix(k, ver)
	var subs []string
	for key := range s.m {
		if sub, ok := strings.CutPrefix(key, p); ok {
			if from == nil || !reverse && sub >= string(from) || reverse && sub <= string(from) {
				subs = append(subs, sub)
			}
		}
	}
	slices.Sort(subs)
	if reverse {
		slices.Reverse(subs)
	}
	for _, sub := range subs {
		if !fn([]byte(sub), s.m[p+sub]) {
			break
		}
	}
	return nil
}

// PutSub implements Writer.
func (s *MemSubs) PutSub(k []byte, ver uint64, sub, v []byte) error {
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[memSubPrefix(k, ver)+string(sub)] = append([]byte(nil), v...)
	return nil
}

// DelSub implements Writer.
func (s *MemSubs) DelSub(k []byte, ver uint64, sub []byte) error {
	delete(s.m, memSubPrefix(k, ver)+string(sub))
	return nil
}

// VersionAt is Writer.NewVersion for an entry at index.
func (s *MemSubs) VersionAt(k []byte, index uint64) uint64 {
	p := string(binary.BigEndian.AppendUint32(nil, uint32(len(k)))) + string(k)
	v := index
	for key := range s.m {
		if rest, ok := strings.CutPrefix(key, p); ok && len(rest) >= 8 {
			v = max(v, binary.BigEndian.Uint64([]byte(rest[:8]))+1)
		}
	}
	return v
}

// Len is the number of sub-keys held, of every collection.
func (s *MemSubs) Len() int { return len(s.m) }

// Clone is an independent copy.
func (s *MemSubs) Clone() MemSubs {
	c := MemSubs{m: make(map[string][]byte, len(s.m))}
	for k, v := range s.m {
		c.m[k] = v
	}
	return c
}
