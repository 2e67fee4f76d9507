package simfs

import (
	"maps"
	"slices"
)

// undoBlock is the granularity at which a write below the synced length
// saves what it overwrites.
const undoBlock = 4 << 10

// node is a file or a directory. Every field is guarded by FS.mu.
type node struct {
	dir bool

	// Directory.
	children map[string]*node
	// synced holds the entries as of the directory's last sync; nil if it
	// was never synced (then a crash keeps no entry of it).
	synced map[string]*node

	// File. Invariant: the durable content is data[:syncedLen] with every
	// undo pre-image copied over it (at offset block*undoBlock); each
	// pre-image ends at or before syncedLen. Files only grow (vfs.File has
	// no Truncate), so syncedLen <= len(data).
	data      []byte
	syncedLen int
	undo      map[int][]byte
	// undoLo: for each block in undo, the lowest offset written since the
	// last sync. The bytes of the block below it are synced: a torn tail
	// starts at it, never before (a synced record must never tear).
	undoLo map[int]int
}

func newDir() *node { return &node{dir: true, children: map[string]*node{}} }

// write stores p at off, growing the file with zeros if off is past its
// end. Blocks below the synced length keep their pre-image first, once per
// sync: the cost is O(len(p)) plus at most one block per block touched.
func (n *node) write(off int, p []byte) {
	end := off + len(p)
	if off < n.syncedLen {
		for b := off / undoBlock; b*undoBlock < min(end, n.syncedLen); b++ {
			s := b * undoBlock
			lo := max(off, s)
			if _, ok := n.undo[b]; ok {
				n.undoLo[b] = min(n.undoLo[b], lo)
				continue
			}
			if n.undo == nil {
				n.undo, n.undoLo = map[int][]byte{}, map[int]int{}
			}
			n.undo[b] = slices.Clone(n.data[s:min(s+undoBlock, n.syncedLen)])
			n.undoLo[b] = lo
		}
	}
	if old := len(n.data); end > old {
		if end > cap(n.data) {
			grown := make([]byte, end, max(end, 2*cap(n.data), 4<<10))
			copy(grown, n.data)
			n.data = grown
		} else {
			n.data = n.data[:end]
			clear(n.data[old:end])
		}
	}
	copy(n.data[off:end], p)
}

// sync makes everything written durable in O(1) (plus the pre-images
// dropped).
func (n *node) sync() {
	if n.dir {
		n.synced = maps.Clone(n.children)
		return
	}
	n.syncedLen = len(n.data)
	n.undo, n.undoLo = nil, nil
}

// dirty reports whether the file holds bytes a crash would lose.
func (n *node) dirty() bool { return len(n.undo) > 0 || len(n.data) > n.syncedLen }

// durable returns a fresh copy of the file's durable content.
func (n *node) durable() []byte {
	img := make([]byte, n.syncedLen, n.syncedLen+len(n.data)-n.syncedLen)
	copy(img, n.data[:n.syncedLen])
	// Pre-images cover disjoint blocks: the order of this walk cannot show.
	for b, pre := range n.undo {
		copy(img[b*undoBlock:], pre)
	}
	return img
}

// span is a byte range [lo, hi) of a file.
type span struct{ lo, hi int }

// unsynced lists the ranges holding bytes a crash would lose, in offset
// order: in each block overwritten below the synced length, from the
// lowest offset written since the sync; then the bytes appended past it.
func (n *node) unsynced() []span {
	blocks := slices.Sorted(maps.Keys(n.undo))
	out := make([]span, 0, len(blocks)+1)
	for _, b := range blocks {
		s := b * undoBlock
		out = append(out, span{n.undoLo[b], s + len(n.undo[b])})
	}
	if len(n.data) > n.syncedLen {
		out = append(out, span{n.syncedLen, len(n.data)})
	}
	return out
}

// sortedNames returns a directory's entry names in sorted order; every walk
// that can show in a result goes through it.
func sortedNames(m map[string]*node) []string {
	return slices.Sorted(maps.Keys(m))
}
