package statemachine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/txn"
)

// memStore is one group's state in memory, as Store: what the engine's
// apply batch is, without Pebble.
type memStore struct {
	index uint64
	nowMS int64
	data  map[string][]byte // version (8 bytes) + stored value
	kv.MemSubs
	tables    map[byte]map[string][]byte
	refused   bool
	restoring bool
	cuts      map[string]bool
	// loose: Put does not check its created flag. The metadata group
	// counts no keys, and its writes pass created=false.
	loose bool
}

func newMemStore() *memStore {
	return &memStore{index: 10, nowMS: 1_700_000_000_000, data: map[string][]byte{}, tables: map[byte]map[string][]byte{}, cuts: map[string]bool{}}
}

func (m *memStore) Get(k []byte) ([]byte, bool, error) {
	v, ok := m.data[string(k)]
	if !ok {
		return nil, false, nil
	}
	return v[8:], true, nil
}

func (m *memStore) NowMS() int64 { return m.nowMS }
func (m *memStore) NewVersion(k []byte) (uint64, error) {
	return m.VersionAt(k, m.index), nil
}
func (m *memStore) Applied() (uint64, error) { return m.index, nil }
func (m *memStore) Index() uint64            { return m.index }
func (m *memStore) Refuse()                  { m.refused = true }
func (m *memStore) Restoring() bool          { return m.restoring }
func (m *memStore) SetRestoring(on bool)     { m.restoring = on }
func (m *memStore) HasKeys() (bool, error)   { return len(m.data) > 0, nil }

func (m *memStore) Version(k []byte) (uint64, error) {
	v, ok := m.data[string(k)]
	if !ok {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), nil
}

func (m *memStore) Put(k, v []byte, created bool) error {
	if _, ok := m.data[string(k)]; ok == created && !m.loose {
		return fmt.Errorf("put %q: created=%v but exists=%v", k, created, ok)
	}
	m.data[string(k)] = append(binary.BigEndian.AppendUint64(nil, m.index), v...)
	return nil
}

func (m *memStore) Del(k []byte) error {
	return m.del(k)
}

func (m *memStore) PutBlind(k, v []byte) error {
	_, ok := m.data[string(k)]
	return m.Put(k, v, !ok)
}

func (m *memStore) del(k []byte) error {
	if _, ok := m.data[string(k)]; !ok {
		return fmt.Errorf("del of missing key %q", k)
	}
	delete(m.data, string(k))
	return nil
}

func (m *memStore) TxnGet(t byte, k []byte) ([]byte, bool, error) {
	v, ok := m.tables[t][string(k)]
	return v, ok, nil
}

func (m *memStore) NoLocks() bool { return len(m.tables[txn.TableLocks]) == 0 }

func (m *memStore) TxnPut(t byte, k, v []byte) error {
	if m.tables[t] == nil {
		m.tables[t] = map[string][]byte{}
	}
	m.tables[t][string(k)] = append([]byte(nil), v...)
	return nil
}

func (m *memStore) TxnDel(t byte, k []byte) error {
	delete(m.tables[t], string(k))
	return nil
}

func (m *memStore) ScanPrefix(prefix []byte, fn func(v []byte) bool) error {
	var keys []string
	for k := range m.data {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn(m.data[k][8:]) {
			break
		}
	}
	return nil
}

func (m *memStore) TxnEmpty() (bool, error) {
	for _, t := range m.tables {
		if len(t) > 0 {
			return false, nil
		}
	}
	return true, nil
}

func (m *memStore) Clear() error {
	m.data, m.tables = map[string][]byte{}, map[byte]map[string][]byte{}
	m.MemSubs = kv.MemSubs{}
	return nil
}

func (m *memStore) ClearData() error {
	m.data, m.MemSubs = map[string][]byte{}, kv.MemSubs{}
	return nil
}

func (m *memStore) Cut(id string, _ time.Duration) error { m.cuts[id] = true; return nil }
func (m *memStore) Uncut(id string) error                { delete(m.cuts, id); return nil }

var _ Store = (*memStore)(nil)
