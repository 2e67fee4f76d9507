package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
)

// storedWithExpiry is a string value as package kv stores it with an
// expiry time: tag 'S', the time in Unix ms, the payload.
func storedWithExpiry(atMS int64) string {
	b := binary.BigEndian.AppendUint64([]byte{'S'}, uint64(atMS))
	return string(append(b, "v"...))
}

// A sweep reads at most expireScan keys and proposes the expired ones in
// batches of expireBatch; the next starts where it stopped, and the one
// after that from the beginning. A refused batch ends the sweep where it
// began, so nothing is skipped.
func TestExpirySweepsInStretches(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	var kvs [][2]string
	for i := range 2500 {
		at := now.UnixMilli() + 1 // not yet
		if i%2 == 0 {
			at = now.UnixMilli() // expired: due at or before now
		}
		kvs = append(kvs, [2]string{fmt.Sprintf("k%04d", i), storedWithExpiry(at)})
	}
	kvs = append(kvs, [2]string{"plain", "sv"}) // no expiry
	slices.SortFunc(kvs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	var batches []int
	var deleted []string
	reply := "$1\r\n\r\n"
	e := NewExpiry(ExpiryConfig{
		NodeID: 1, Engine: &fakeEngine{data: map[uint64][][2]string{5: kvs}},
		Now: func() time.Time { return now }, RequestTimeout: time.Second,
		Write: func(_ context.Context, group uint64, args [][]byte) []byte {
			if group != 5 || string(args[0]) != "kintsu.expired" {
				t.Fatalf("wrote %q to group %d", args[0], group)
			}
			batches = append(batches, len(args)-1)
			for _, k := range args[1:] {
				deleted = append(deleted, string(k))
			}
			return []byte(reply)
		},
	})
	ctx := context.Background()
	next, err := e.expireSome(ctx, 5, nil)
	if err != nil || string(next) != "k2000" {
		t.Fatalf("first sweep stops at %q, %v; want k2000", next, err)
	}
	if len(batches) != 10 || slices.Max(batches) != expireBatch || len(deleted) != 1000 {
		t.Fatalf("first sweep: batches %v", batches)
	}
	batches = nil
	if next, err = e.expireSome(ctx, 5, next); err != nil || next != nil {
		t.Fatalf("second sweep: next %q, %v; want the beginning", next, err)
	}
	if !slices.Equal(batches, []int{100, 100, 50}) {
		t.Fatalf("second sweep: batches %v", batches)
	}
	for i, k := range deleted {
		if k != fmt.Sprintf("k%04d", 2*i) {
			t.Fatalf("deleted #%d is %s", i, k)
		}
	}

	reply = "-TRYAGAIN no leader\r\n"
	from := []byte("k1000")
	next, err = e.expireSome(ctx, 5, from)
	if err == nil || !strings.Contains(err.Error(), "TRYAGAIN no leader") || !bytes.Equal(next, from) {
		t.Fatalf("refused batch: next %q, %v", next, err)
	}
}

// Cut markers older than abandonedCut are released through the log; a
// younger one may still belong to a backup in progress.
func TestSweeperDropsAbandonedCuts(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	var wrote []string
	s := NewSweeper(SweepConfig{
		CutMarks: func(group uint64) (map[string]int64, error) {
			return map[string]int64{
				"old":   now.Add(-abandonedCut).UnixMilli(),
				"young": now.Add(-abandonedCut + time.Millisecond).UnixMilli(),
			}, nil
		},
		Now: func() time.Time { return now }, RequestTimeout: time.Second,
		Write: func(_ context.Context, group uint64, args [][]byte) []byte {
			wrote = append(wrote, fmt.Sprintf("%d %s", group, bytes.Join(args, []byte(" "))))
			return []byte(okReply)
		},
	})
	s.dropAbandonedCuts(context.Background(), 3)
	if want := []string{"3 kintsu.uncut old"}; !slices.Equal(wrote, want) {
		t.Fatalf("wrote %q, want %q", wrote, want)
	}
}

// The sweep of orphaned sub-keys proposes kintsu.sweep only for
// collections whose key names another version or nothing, repeats while
// an entry removes kv.SweepMax, stops at its budget where it can come
// back, looks at sweepScan collections a round, and stops at a refusal.
func TestSweepOfOrphanedSubKeys(t *testing.T) {
	live := storedHash(7)
	var colls []fakeColl
	for i := range sweepScan + 5 {
		c := fakeColl{pos: fmt.Sprintf("c%05d", i), k: fmt.Sprintf("h%d", i), ver: 7, stored: live, present: true}
		switch i % 4 {
		case 1:
			c.present, c.stored = false, "" // deleted
		case 2:
			c.stored = "sv" // replaced by a string
		case 3:
			c.stored = storedHash(9) // replaced by a newer hash
		}
		colls = append(colls, c)
	}
	left := map[string]int{"h1": 2*kv.SweepMax + 3} // sub-keys of the first orphan: three entries
	var wrote []string
	refuse := false
	e := NewExpiry(ExpiryConfig{
		NodeID: 1, Engine: &fakeEngine{colls: map[uint64][]fakeColl{5: colls}},
		RequestTimeout: time.Second,
		Write: func(_ context.Context, group uint64, args [][]byte) []byte {
			if refuse {
				return []byte("-TRYAGAIN no leader\r\n")
			}
			wrote = append(wrote, string(bytes.Join(args, []byte(" "))))
			n := min(left[string(args[1])], kv.SweepMax)
			left[string(args[1])] -= n
			return []byte(fmt.Sprintf(":%d\r\n", n))
		},
	})
	ctx := context.Background()
	next, err := e.sweepSome(ctx, 5, nil)
	// The budget runs out before h19: the round ends at its position (the
	// one after c00018).
	if err != nil || string(next) != "c00018\x00" {
		t.Fatalf("first round stops at %q, %v; want h19's position", next, err)
	}
	want := []string{"kintsu.sweep h1 7", "kintsu.sweep h1 7", "kintsu.sweep h1 7"}
	for i := 2; len(want) < sweepBudget; i++ {
		if i%4 != 0 {
			want = append(want, fmt.Sprintf("kintsu.sweep h%d 7", i))
		}
	}
	if !slices.Equal(wrote, want) {
		t.Fatalf("first round wrote %q, want %q", wrote, want)
	}
	wrote = nil
	refuse = true
	if again, err := e.sweepSome(ctx, 5, next); err == nil || !bytes.Equal(again, next) {
		t.Fatalf("refused: next %q, %v; want to stay at %q", again, err, next)
	}
	refuse = false
	// From near the end: the rest of the scan window, then the beginning.
	next, err = e.sweepSome(ctx, 5, []byte(fmt.Sprintf("c%05d", sweepScan)))
	if err != nil || next != nil {
		t.Fatalf("last stretch: next %q, %v; want the beginning", next, err)
	}
	if len(wrote) != 3 { // c01001..c01003 are orphans (i%4 = 1, 2, 3)
		t.Fatalf("last stretch wrote %q", wrote)
	}
	// A full window of live collections ends at the window.
	wrote = nil
	var lives []fakeColl
	for i := range sweepScan + 1 {
		lives = append(lives, fakeColl{pos: fmt.Sprintf("c%05d", i), k: "x", ver: 7, stored: live, present: true})
	}
	e.cfg.Engine = &fakeEngine{colls: map[uint64][]fakeColl{5: lives}}
	if next, err = e.sweepSome(ctx, 5, nil); err != nil || string(next) != fmt.Sprintf("c%05d\x00", sweepScan-1) || len(wrote) != 0 {
		t.Fatalf("live window: next %q, %v, wrote %q", next, err, wrote)
	}
}

// storedHash is a hash's metadata record as package kv stores it: tag
// 'h', expiry, version, length.
func storedHash(ver uint64) string {
	b := binary.BigEndian.AppendUint64([]byte{'h'}, 0)
	b = binary.BigEndian.AppendUint64(b, ver)
	return string(binary.BigEndian.AppendUint64(b, 3))
}
