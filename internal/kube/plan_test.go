package kube

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kintsu/kintsu/internal/api"
)

func peer(o int) string { return fmt.Sprintf("kintsu-%d.kintsu:17001", o) }

func rec(id uint64, state string, hb int64) api.NodeRecord {
	return api.NodeRecord{ID: id, State: state, HeartbeatMS: hb, PeerAddr: peer(int(id) - 1)}
}

// TestDecide walks the pod's lives: first bootstrap, a late initial pod,
// a lost volume, scale-up, a restart, and a scale-up after a scale-down.
func TestDecide(t *testing.T) {
	running := []api.NodeRecord{rec(1, api.NodeUp, 5), rec(2, api.NodeUp, 5), rec(3, api.NodeUp, 5)}
	cases := []struct {
		name    string
		ordinal int
		prev    *Plan
		members []api.NodeRecord
		want    Plan
		wipe    bool
		formed  bool
		err     error
	}{
		{name: "first start, nobody answers", ordinal: 1,
			want: Plan{ID: 2, Mode: Bootstrap, InitialCluster: "1=kintsu-0.kintsu:17001,2=kintsu-1.kintsu:17001,3=kintsu-2.kintsu:17001"}},
		{name: "late initial pod, the others formed the cluster", ordinal: 2,
			members: []api.NodeRecord{rec(1, api.NodeUp, 5), rec(2, api.NodeUp, 5), rec(3, api.NodeUp, 0)},
			want:    Plan{ID: 3, Mode: Bootstrap, InitialCluster: "1=kintsu-0.kintsu:17001,2=kintsu-1.kintsu:17001,3=kintsu-2.kintsu:17001"}},
		{name: "initial pod whose volume was lost joins under a new id", ordinal: 1,
			members: []api.NodeRecord{rec(1, api.NodeUp, 5), rec(2, api.NodeDead, 5), rec(3, api.NodeUp, 5)},
			want:    Plan{ID: 2 + IDStride, Mode: Join, Seed: peer(0)}},
		{name: "initial pod whose volume was lost, nobody answering, the cluster formed: waits", ordinal: 1,
			formed: true, err: ErrNoCluster},
		{name: "a late initial pod once the cluster formed joins under a new id", ordinal: 2, formed: true,
			members: []api.NodeRecord{rec(1, api.NodeUp, 5), rec(2, api.NodeUp, 5), rec(3, api.NodeDead, 0)},
			want:    Plan{ID: 3 + IDStride, Mode: Join, Seed: peer(0)}},
		{name: "scale-up joins as ordinal+1", ordinal: 3, members: running,
			want: Plan{ID: 4, Mode: Join, Seed: peer(0)}},
		{name: "scale-up with nobody to join waits", ordinal: 3, err: ErrNoCluster},
		{name: "restart keeps the volume's node", ordinal: 0, prev: &Plan{ID: 7, Mode: Join, Seed: "x:1"}, members: running,
			want: Plan{ID: 7, Mode: Join, Seed: "x:1"}},
		{name: "restart while nobody answers", ordinal: 0, prev: &Plan{ID: 1, Mode: Bootstrap, InitialCluster: "1=a"},
			want: Plan{ID: 1, Mode: Bootstrap, InitialCluster: "1=a"}},
		{name: "scale-up after a scale-down: the removed node's volume is wiped, a new id joins", ordinal: 3,
			prev:    &Plan{ID: 4, Mode: Join, Seed: peer(0)},
			members: append(append([]api.NodeRecord{}, running...), rec(4, api.NodeRemoved, 5)),
			want:    Plan{ID: 4 + IDStride, Mode: Join, Seed: peer(0)}, wipe: true},
		{name: "a removed initial node's volume never bootstraps again", ordinal: 0,
			prev:    &Plan{ID: 1, Mode: Bootstrap, InitialCluster: "…"},
			members: []api.NodeRecord{rec(1, api.NodeRemoved, 5), rec(2, api.NodeUp, 5), rec(3, api.NodeUp, 5), rec(4, api.NodeUp, 5)},
			want:    Plan{ID: 1 + IDStride, Mode: Join, Seed: peer(1)}, wipe: true},
		{name: "no serving member to join through", ordinal: 4, members: []api.NodeRecord{rec(1, api.NodeDead, 5)}, err: ErrNoCluster},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decide(Input{Ordinal: c.ordinal, Initial: 3, PeerAddr: peer, Prev: c.prev, Members: c.members, Formed: c.formed})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("got %+v, %v; want error %v", d, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Plan != c.want || d.Wipe != c.wipe {
				t.Fatalf("got %+v wipe=%v (%s); want %+v wipe=%v", d.Plan, d.Wipe, d.Why, c.want, c.wipe)
			}
			if d.Why == "" {
				t.Fatal("no reason given")
			}
		})
	}
}

// TestFreshVolumeNeverReusesAnId: over every membership of up to five
// ids in any state, a fresh volume that joins takes an id no member has.
func TestFreshVolumeNeverReusesAnId(t *testing.T) {
	states := []string{"", api.NodeUp, api.NodeDead, api.NodeRemoved, api.NodeDraining}
	var members []api.NodeRecord
	var walk func(id uint64)
	checked := 0
	walk = func(id uint64) {
		if id > 4 {
			for o := range 6 {
				for _, formed := range []bool{false, true} {
					d, err := Decide(Input{Ordinal: o, Initial: 3, PeerAddr: peer, Members: members, Formed: formed})
					if err != nil {
						continue
					}
					if formed && d.Plan.Mode == Bootstrap {
						t.Fatalf("ordinal %d bootstraps in a formed cluster (%v)", o, members)
					}
					if d.Plan.Mode != Join {
						continue
					}
					checked++
					if _, taken := record(members, d.Plan.ID); taken {
						t.Fatalf("ordinal %d joins as node %d, which %v lists", o, d.Plan.ID, members)
					}
				}
			}
			return
		}
		for _, s := range states {
			for _, hb := range []int64{0, 5} {
				n := len(members)
				if s != "" {
					members = append(members, rec(id, s, hb))
				}
				walk(id + 1)
				members = members[:n]
			}
		}
	}
	walk(1)
	if checked == 0 {
		t.Fatal("no join was decided")
	}
}

// TestPodsJoiningAtOnceTakeDistinctIds: pods that scale up together see
// the same membership and decide alone; they never pick the same id,
// whatever ids ran before.
func TestPodsJoiningAtOnceTakeDistinctIds(t *testing.T) {
	members := []api.NodeRecord{rec(1, api.NodeUp, 5), rec(2, api.NodeUp, 5), rec(3, api.NodeUp, 5),
		rec(4, api.NodeRemoved, 5), rec(5, api.NodeRemoved, 5), rec(1006, api.NodeRemoved, 5), rec(7, api.NodeDead, 5)}
	seen := map[uint64]int{}
	for o := 3; o < 12; o++ {
		d, err := Decide(Input{Ordinal: o, Initial: 3, PeerAddr: peer, Members: members, Formed: true})
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[d.Plan.ID]; dup {
			t.Fatalf("ordinals %d and %d both take node %d", prev, o, d.Plan.ID)
		}
		if _, taken := record(members, d.Plan.ID); taken {
			t.Fatalf("ordinal %d takes node %d, which ran before", o, d.Plan.ID)
		}
		seen[d.Plan.ID] = o
	}
}

func TestOrdinal(t *testing.T) {
	set, o, err := Ordinal("kintsu-12")
	if err != nil || set != "kintsu" || o != 12 {
		t.Fatalf("got %q %d %v", set, o, err)
	}
	for _, bad := range []string{"kintsu", "-3", "kintsu-x"} {
		if _, _, err := Ordinal(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
