package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kintsu/kintsu/internal/storage"
)

// TestCorruptSSTableFencesThenRefusesStart: a flipped byte in an sstable
// (audit R-D3: a panic at every start) fences the node when it is read,
// without a panic, and every later start is refused with a message naming
// the file and how to rebuild the node: no crash loop.
func TestCorruptSSTableFencesThenRefusesStart(t *testing.T) {
	tc := startCluster(t, 1, func(c *Config) { c.Replicas = 1 })
	c := redis.NewClient(&redis.Options{Addr: tc.respAddr(0), MaxRetries: -1})
	val := strings.Repeat("v", 1000)
	for i := range 200 {
		if err := c.Set(ctx5(t), fmt.Sprint("k", i), val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := tc.nodes[0].db.Flush(); err != nil {
		t.Fatal(err)
	}
	tc.stopAll()
	cfg := tc.cfgs[0]
	tc.nodes = nil
	ssts, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable after a flush")
	}
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[200] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The start may meet the damage while loading replicas (then it
	// fails), or later when a read does (then the node fences itself).
	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err := Start(cfg)
	if err == nil {
		c := redis.NewClient(&redis.Options{Addr: cfg.RESPAddr, MaxRetries: -1})
		deadline := time.Now().Add(20 * time.Second)
	read:
		for i := 0; ; i = (i + 1) % 200 {
			select {
			case <-n.Failed():
				break read
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("reading every key of a corrupt sstable did not fence the node")
			}
			_ = c.Get(ctx5(t), fmt.Sprint("k", i)).Err()
		}
		c.Close()
		if e := n.Err(); e == nil || !strings.Contains(e.Error(), "corrupt data file") {
			t.Errorf("fenced with %v", e)
		}
		_ = n.Stop(ctx5(t))
	}

	cfg.Listeners = &Listeners{Peer: listenOn(t, cfg.PeerAddr), RESP: listenOn(t, cfg.RESPAddr), HTTP: listenOn(t, cfg.HTTPAddr)}
	n, err = Start(cfg)
	if err == nil {
		_ = n.Stop(ctx5(t))
		t.Fatal("a node with a recorded corruption started")
	}
	if !errors.Is(err, storage.ErrCorruptDir) || !strings.Contains(err.Error(), ".sst") || !strings.Contains(err.Error(), "kintsu ctl node remove") {
		t.Fatalf("refusal: %v", err)
	}
	for _, l := range []interface{ Close() error }{cfg.Listeners.Peer, cfg.Listeners.RESP, cfg.Listeners.HTTP} {
		_ = l.Close()
	}
	t.Logf("refusal: %v", err)
}
