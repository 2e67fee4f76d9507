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
