package control

import (
	"testing"

	"github.com/kintsu/kintsu/internal/ring"
)

// Every initial node computes the same layout and cluster id from the same
// flags, whatever order its map was built in; a different shape is a
// different cluster, and the stored identity names each disagreement.
func TestLayoutIsAFunctionOfTheShape(t *testing.T) {
	ic := map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: "127.0.0.1:3"}
	rc := ring.Config{Partitions: 8, Replicas: 3}
	rc.EnsureDefaults()
	a, err := NewLayout(Shape{NodeID: 1, InitialCluster: ic, Ring: rc})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLayout(Shape{NodeID: 3, InitialCluster: map[uint64]string{3: "127.0.0.1:3", 2: "127.0.0.1:2", 1: "127.0.0.1:1"}, Ring: rc})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ident.ClusterID != b.Ident.ClusterID || len(a.Partitions) != 8 || len(a.MetaNodes) != len(b.MetaNodes) {
		t.Fatalf("two nodes of one cluster disagree: %+v vs %+v", a.Ident, b.Ident)
	}
	if c := Contradictions(a.Ident, b.Ident); len(c) != 1 {
		t.Fatalf("only the node id differs, got %q", c)
	}
	rc16 := rc
	rc16.Partitions = 16
	c, err := NewLayout(Shape{NodeID: 1, InitialCluster: ic, Ring: rc16})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ident.ClusterID == a.Ident.ClusterID {
		t.Fatal("a different partition count gave the same cluster id")
	}
	if got := Contradictions(a.Ident, c.Ident); len(got) != 1 {
		t.Fatalf("only the partition count differs, got %q", got)
	}
	boot := a.Bootstrap(0, []uint64{2, 3}, ic)
	if len(boot.Desc.Replicas) != 2 || boot.Desc.Replicas[1].Node != 3 || boot.Desc.NextID != 3 || boot.Data != nil {
		t.Fatalf("bootstrap of a data partition: %+v", boot)
	}
}
