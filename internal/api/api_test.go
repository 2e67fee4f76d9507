package api

import (
	"encoding/json"
	"testing"
)

// The JSON of every shape, written out by hand: a renamed field or tag
// fails here before it breaks another process or a file on disk.
func TestWireFormat(t *testing.T) {
	node := NodeRecord{ID: 2, PeerAddr: "p:1", RESPAddr: "r:1", HTTPAddr: "h:1", State: NodeUp, HeartbeatMS: 5, LastHeartbeat: "t"}
	const nodeJSON = `{"id":2,"peer_addr":"p:1","resp_addr":"r:1","http_addr":"h:1","state":"up","heartbeat_ms":5,"last_heartbeat":"t"}`
	part := PartitionRecord{ID: 1, SlotStart: 2, SlotEnd: 3, Replicas: []uint64{1, 2}, Learners: []uint64{3}}
	const partJSON = `{"id":1,"slot_start":2,"slot_end":3,"replicas":[1,2],"learners":[3]}`
	ident := Identity{ClusterID: "c", NodeID: 1, InitialCluster: "1=a", Partitions: 4, Replicas: 3, VNodes: 8, Joined: true}
	const identJSON = `{"cluster_id":"c","node_id":1,"initial_cluster":"1=a","partitions":4,"replicas":3,"vnodes":8,"joined":true}`
	cmap := ClusterMapJSON{Nodes: []NodeRecord{node}, Parts: []PartitionRecord{part}, Meta: []uint64{1}}
	cmapJSON := `{"nodes":[` + nodeJSON + `],"partitions":[` + partJSON + `],"meta":[1]}`

	for _, c := range []struct {
		v    any
		want string
	}{
		{node, nodeJSON},
		{NodeRecord{ID: 1, State: NodeRemoved}, `{"id":1,"peer_addr":"","resp_addr":"","http_addr":"","state":"removed"}`},
		{part, partJSON},
		{PartitionRecord{Replicas: []uint64{1}}, `{"id":0,"slot_start":0,"slot_end":0,"replicas":[1]}`},
		{ident, identJSON},
		{Identity{}, `{"cluster_id":"","node_id":0,"initial_cluster":"","partitions":0,"replicas":0,"vnodes":0}`},
		{cmap, cmapJSON},
		{JoinJSON{Identity: ident, Nodes: []NodeRecord{node}, Map: cmap}, `{"identity":` + identJSON + `,"nodes":[` + nodeJSON + `],"map":` + cmapJSON + `}`},
		{StatusJSON{NodeID: 2, ClusterID: "c", Version: "v", Ready: true, Nodes: []NodeRecord{node}, Partitions: []PartitionStatus{{
			ID: 1, SlotStart: 2, SlotEnd: 3, Replicas: []uint64{1}, Learners: []uint64{2}, Leader: 1, AppliedIndex: 9, Term: 4, Local: "leader", Keys: 7}}},
			`{"node_id":2,"cluster_id":"c","version":"v","ready":true,"nodes":[` + nodeJSON + `],"partitions":[` +
				`{"id":1,"slot_start":2,"slot_end":3,"replicas":[1],"learners":[2],"leader":1,"applied_index":9,"term":4,"local_role":"leader","keys":7}]}`},
		{PartitionStatus{}, `{"id":0,"slot_start":0,"slot_end":0,"replicas":null,"leader":0,"applied_index":0,"keys":0}`},
		{TransferJSON{StillLeading: 3}, `{"still_leading":3}`},
		{CutJSON{ID: "x", ClusterID: "c", Version: "v", Started: "s", CutAt: "a", Partitions: []CutPartition{{ID: 1, SlotStart: 2, SlotEnd: 3, Index: 4, Nodes: []string{"h:1"}}}},
			`{"id":"x","cluster_id":"c","version":"v","started":"s","cut_at":"a","partitions":[{"id":1,"slot_start":2,"slot_end":3,"index":4,"nodes":["h:1"]}]}`},
		{FaultCut{Nodes: []uint64{2, 3}}, `{"nodes":[2,3]}`},
		{FaultClock{OffsetMS: -30000, Rate: 2}, `{"offset_ms":-30000,"rate":2}`},
		{FaultDisk{SyncDelayMS: 500}, `{"sync_delay_ms":500}`},
		{FaultDisk{FailWrites: true}, `{"fail_writes":true}`},
		{FaultCrash{At: FailAfterPrepare}, `{"at":"after-prepare"}`},
		// The zero body of every fault hook heals it.
		{FaultCut{}, `{}`}, {FaultClock{}, `{}`}, {FaultDisk{}, `{}`}, {FaultCrash{}, `{}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%T:\n got %s\nwant %s", c.v, b, c.want)
		}
	}
}

// Names other processes send: arming a failpoint or comparing a state.
func TestNames(t *testing.T) {
	got := map[string]string{
		"FailParticipantPrepared": FailParticipantPrepared, "FailAfterPrepare": FailAfterPrepare, "FailAfterDecision": FailAfterDecision,
		"NodeUp": NodeUp, "NodeDraining": NodeDraining, "NodeRemoved": NodeRemoved, "NodeSuspect": NodeSuspect, "NodeDead": NodeDead,
	}
	want := map[string]string{
		"FailParticipantPrepared": "participant-prepared", "FailAfterPrepare": "after-prepare", "FailAfterDecision": "after-decision",
		"NodeUp": "up", "NodeDraining": "draining", "NodeRemoved": "removed", "NodeSuspect": "suspect", "NodeDead": "dead",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if len(CrashPoints()) != 3 {
		t.Errorf("CrashPoints() = %v", CrashPoints())
	}
}
