package scalesim

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/raftstore"
	"github.com/kintsu/kintsu/internal/ring"
)

// Config is a simulated cluster.
type Config struct {
	Nodes      int // initial members, ids 1..Nodes
	Partitions int // spread evenly over the ring (any count: no slots here)
	Replicas   int // default ring.DefaultReplicas
	VNodes     int // default ring.DefaultVNodes
	// Every is the heartbeat interval, one driver round (default 1 s);
	// Dead the dead timeout (default 1 min), as a node's flags set them.
	Every, Dead time.Duration
	// CatchUp is how many rounds a new learner takes to catch up before
	// it can be promoted (a snapshot shipped and applied); default 2.
	CatchUp int
	// MaxRounds bounds a scenario; default 100,000.
	MaxRounds int
}

func (c *Config) defaults() error {
	if c.Replicas == 0 {
		c.Replicas = ring.DefaultReplicas
	}
	if c.VNodes == 0 {
		c.VNodes = ring.DefaultVNodes
	}
	if c.Every == 0 {
		c.Every = time.Second
	}
	if c.Dead == 0 {
		c.Dead = time.Minute
	}
	if c.CatchUp == 0 {
		c.CatchUp = 2
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = 100_000
	}
	switch {
	case c.Nodes < c.Replicas || c.Replicas < 1:
		return fmt.Errorf("scalesim: %d nodes cannot hold %d replicas", c.Nodes, c.Replicas)
	case c.Partitions < 1:
		return errors.New("scalesim: no partitions")
	case c.Every <= 0 || c.Dead < c.Every || c.CatchUp < 0 || c.MaxRounds < 1:
		return errors.New("scalesim: bad timing")
	}
	return nil
}

// Change is what a scenario does to the membership.
type Change string

// The changes a scenario can make; the node that dies or is
// decommissioned is node 1, the node that joins is Nodes+1.
const (
	Join         Change = "join"
	Die          Change = "die"
	Decommission Change = "decommission"
)

// Report is what a scenario measured.
type Report struct {
	Change                      Change
	Nodes, Partitions, Replicas int // before the change
	// Rounds from the change until the driver planned nothing and every
	// group held its target; SimTime is that on the simulated clock
	// (a dead node first waits out the dead timeout).
	Rounds  int
	SimTime time.Duration
	// Created counts the replicas created (learners added); Optimum is
	// the fewest any placement must create: the joining node's fair
	// share R·P/N, or the replicas the leaving node held.
	Created int
	Optimum float64
	// Steps counts every step taken (adds, promotions, removals,
	// leadership transfers).
	Steps int
	// Load and Leaders: the most replicas and leaderships any node holds
	// at the end, against the mean.
	MaxLoad, MeanLoad       float64
	MaxLeaders, MeanLeaders float64
	// RoundCPU is the driver's decision time per round, mean and worst;
	// PlaceCPU the part of it in ring.PlaceAt.
	RoundCPU, MaxRoundCPU, PlaceCPU time.Duration
}

// Ratio is Created / Optimum.
func (r Report) Ratio() float64 {
	if r.Optimum == 0 {
		return 0
	}
	return float64(r.Created) / r.Optimum
}

func (r Report) String() string {
	return fmt.Sprintf("%s N=%d P=%d R=%d: converged in %d rounds (%v simulated); created %d replicas, optimum %.0f (%.3f×), %d steps; "+
		"replicas per node max %.0f mean %.1f, leaders max %.0f mean %.1f; driver round %v mean, %v worst (placement %v)",
		r.Change, r.Nodes, r.Partitions, r.Replicas, r.Rounds, r.SimTime, r.Created, r.Optimum, r.Ratio(), r.Steps,
		r.MaxLoad, r.MeanLoad, r.MaxLeaders, r.MeanLeaders,
		r.RoundCPU.Round(time.Microsecond), r.MaxRoundCPU.Round(time.Microsecond), r.PlaceCPU.Round(time.Microsecond))
}

type node struct {
	rec   api.NodeRecord // stored state and last heartbeat
	alive bool
}

type group struct {
	voters, learners []uint64
	addedAt          []int // the round each learner was added
	leader           uint64
}

// sim is one simulated cluster.
type sim struct {
	cfg    Config
	rc     ring.Config
	starts []uint64
	nodes  []*node // by id - 1
	groups []group
	round  int
	nowMS  int64
}

// newSim is a converged cluster of cfg's partitions spread evenly over
// the ring.
func newSim(cfg Config) (*sim, error) {
	starts := make([]uint64, cfg.Partitions)
	for p := range starts {
		starts[p], _ = bits.Div64(uint64(p), 0, uint64(cfg.Partitions)) // p·2^64/P
	}
	return newSimAt(cfg, starts)
}

// newSimAt is a converged cluster whose partitions are placed at starts.
func newSimAt(cfg Config, starts []uint64) (*sim, error) {
	s := &sim{cfg: cfg, rc: ring.Config{Replicas: cfg.Replicas, VNodes: cfg.VNodes}, starts: starts}
	members := make([]ring.Node, cfg.Nodes)
	for i := range cfg.Nodes {
		id := uint64(i + 1)
		s.nodes = append(s.nodes, &node{rec: api.NodeRecord{ID: id, State: api.NodeUp}, alive: true})
		members[i] = ring.Node{ID: id}
	}
	pl, err := ring.PlaceAt(s.rc, members, s.starts)
	if err != nil {
		return nil, err
	}
	s.groups = make([]group, cfg.Partitions)
	for g, reps := range pl.Replicas {
		s.groups[g] = group{voters: slices.Clone(reps), leader: reps[0]}
	}
	return s, nil
}

func (s *sim) node(id uint64) *node {
	if id == 0 || id > uint64(len(s.nodes)) {
		return nil
	}
	return s.nodes[id-1]
}

func (s *sim) alive(id uint64) bool {
	n := s.node(id)
	return n != nil && n.alive
}

// Run plays one scenario: the change, then rounds until convergence.
func Run(cfg Config, change Change) (Report, error) {
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	s, err := newSim(cfg)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Change: change, Nodes: cfg.Nodes, Partitions: cfg.Partitions, Replicas: cfg.Replicas}
	// A few rounds first, so every node has heartbeated.
	for range 2 {
		if _, _, err := s.step(&rep); err != nil {
			return rep, err
		}
	}
	rep = Report{Change: change, Nodes: cfg.Nodes, Partitions: cfg.Partitions, Replicas: cfg.Replicas}
	switch change {
	case Join:
		id := uint64(len(s.nodes) + 1)
		s.nodes = append(s.nodes, &node{rec: api.NodeRecord{ID: id, State: api.NodeUp}, alive: true})
		rep.Optimum = float64(cfg.Replicas*cfg.Partitions) / float64(cfg.Nodes+1)
	case Die, Decommission:
		rep.Optimum = float64(s.holds(1))
		if change == Die {
			s.nodes[0].alive = false
		} else {
			s.nodes[0].rec.State = api.NodeDraining
		}
	default:
		return rep, fmt.Errorf("scalesim: unknown change %q", change)
	}
	var total time.Duration
	for rep.Rounds = 1; rep.Rounds <= cfg.MaxRounds; rep.Rounds++ {
		cpu, done, err := s.step(&rep)
		if err != nil {
			return rep, fmt.Errorf("round %d: %w", rep.Rounds, err)
		}
		total += cpu
		rep.MaxRoundCPU = max(rep.MaxRoundCPU, cpu)
		if done {
			rep.SimTime = time.Duration(rep.Rounds) * cfg.Every
			rep.RoundCPU = total / time.Duration(rep.Rounds)
			rep.PlaceCPU /= time.Duration(rep.Rounds)
			s.balance(&rep)
			return rep, nil
		}
	}
	return rep, fmt.Errorf("scalesim: %s did not converge in %d rounds", change, cfg.MaxRounds)
}

// holds counts the replicas node id holds.
func (s *sim) holds(id uint64) int {
	n := 0
	for _, g := range s.groups {
		if slices.Contains(g.voters, id) || slices.Contains(g.learners, id) {
			n++
		}
	}
	return n
}

// step runs one round: heartbeats, elections, the driver's decision
// (timed), then its steps applied. done: nothing was planned and every
// group holds its target.
func (s *sim) step(rep *Report) (cpu time.Duration, done bool, err error) {
	s.round++
	s.nowMS += s.cfg.Every.Milliseconds()
	for _, n := range s.nodes {
		if n.alive && n.rec.State != api.NodeRemoved {
			n.rec.HeartbeatMS = s.nowMS
		}
	}
	s.elect()

	began := time.Now()
	recs := make([]api.NodeRecord, 0, len(s.nodes))
	for _, n := range s.nodes {
		rec := n.rec
		rec.State = control.LivenessOf(rec, s.nowMS, s.cfg.Every, s.cfg.Dead)
		recs = append(recs, rec)
	}
	eligible, up := control.Eligible(recs)
	if len(eligible) < s.cfg.Replicas {
		return time.Since(began), false, errors.New("fewer eligible nodes than replicas")
	}
	placeBegan := time.Now()
	pl, err := ring.PlaceAt(s.rc, eligible, s.starts)
	if err != nil {
		return 0, false, err
	}
	rep.PlaceCPU += time.Since(placeBegan)
	obs := make([]control.Observed, 0, len(s.groups))
	for g := range s.groups {
		gr := &s.groups[g]
		if gr.leader == 0 {
			continue
		}
		obs = append(obs, control.Observed{
			Group:  uint64(g),
			State:  control.GroupState{Voters: gr.voters, Learners: gr.learners, Leader: gr.leader},
			Target: pl.Replicas[g],
		})
	}
	plan := control.PlanRound(obs, up, control.DefaultLimits(len(eligible)))
	cpu = time.Since(began)

	for _, p := range plan {
		if err := s.apply(int(p.Group), p.Step); err != nil {
			return cpu, false, fmt.Errorf("partition %d, %v: %w", p.Group, p.Step, err)
		}
		rep.Steps++
		if p.Step.Kind == raftstore.AddLearner {
			rep.Created++
		}
	}
	s.retireDrained()
	if len(plan) > 0 || len(obs) < len(s.groups) {
		return cpu, false, nil
	}
	gone := map[uint64]bool{} // nodes that must end up holding nothing
	for _, n := range s.nodes {
		if !n.alive || n.rec.State != api.NodeUp {
			gone[n.rec.ID] = true
		}
	}
	for g, gr := range s.groups {
		if len(gr.learners) > 0 || !sameSet(gr.voters, pl.Replicas[g]) || slices.ContainsFunc(gr.voters, func(v uint64) bool { return gone[v] }) {
			return cpu, false, nil
		}
	}
	return cpu, true, nil
}

// elect gives every group whose leader died its first live voter, as
// raft would while a majority of its voters lives.
func (s *sim) elect() {
	for g := range s.groups {
		gr := &s.groups[g]
		if s.alive(gr.leader) {
			continue
		}
		gr.leader = 0
		live := 0
		for _, v := range gr.voters {
			if s.alive(v) {
				live++
			}
		}
		if 2*live > len(gr.voters) {
			gr.leader = gr.voters[slices.IndexFunc(gr.voters, s.alive)]
		}
	}
}

// apply carries out a step as the group's leader would, refusing any
// step a leader could not take.
func (s *sim) apply(g int, st control.Step) error {
	gr := &s.groups[g]
	isVoter, isLearner := slices.Contains(gr.voters, st.Node), slices.Contains(gr.learners, st.Node)
	switch st.Kind {
	case raftstore.AddLearner:
		if isVoter || isLearner || s.node(st.Node) == nil {
			return errors.New("the node already holds a replica, or does not exist")
		}
		gr.learners = append(gr.learners, st.Node)
		gr.addedAt = append(gr.addedAt, s.round)
	case raftstore.PromoteLearner:
		i := slices.Index(gr.learners, st.Node)
		if i < 0 {
			return errors.New("promotion of a node that is not a learner")
		}
		if s.round-gr.addedAt[i] < s.cfg.CatchUp || !s.alive(st.Node) {
			return nil // not caught up yet: raft refuses, the driver retries
		}
		gr.voters = append(gr.voters, st.Node)
		gr.learners = slices.Delete(gr.learners, i, i+1)
		gr.addedAt = slices.Delete(gr.addedAt, i, i+1)
	case raftstore.RemoveReplica:
		switch {
		case isLearner:
			i := slices.Index(gr.learners, st.Node)
			gr.learners = slices.Delete(gr.learners, i, i+1)
			gr.addedAt = slices.Delete(gr.addedAt, i, i+1)
		case !isVoter:
			return errors.New("removal of a node that holds nothing")
		case st.Node == gr.leader:
			return errors.New("removal of the leader")
		case len(gr.voters) <= s.cfg.Replicas:
			return fmt.Errorf("removal would leave %d voters, fewer than %d", len(gr.voters)-1, s.cfg.Replicas)
		default:
			gr.voters = slices.DeleteFunc(gr.voters, func(v uint64) bool { return v == st.Node })
		}
	case 0:
		if !isVoter {
			return errors.New("leadership to a node that does not vote")
		}
		if s.alive(st.Node) {
			gr.leader = st.Node
		}
	default:
		return fmt.Errorf("unknown step kind %d", st.Kind)
	}
	return nil
}

// retireDrained removes a draining node that holds nothing any more, as
// the driver does once it has seen every group.
func (s *sim) retireDrained() {
	for _, n := range s.nodes {
		if n.rec.State == api.NodeDraining && s.holds(n.rec.ID) == 0 {
			n.rec.State = api.NodeRemoved
		}
	}
}

// balance fills in the end state's loads over the nodes that may hold
// replicas.
func (s *sim) balance(rep *Report) {
	load, leads := map[uint64]int{}, map[uint64]int{}
	for _, n := range s.nodes {
		if n.alive && n.rec.State == api.NodeUp {
			load[n.rec.ID], leads[n.rec.ID] = 0, 0
		}
	}
	for _, gr := range s.groups {
		for _, v := range gr.voters {
			load[v]++
		}
		leads[gr.leader]++
	}
	for id := range load {
		rep.MaxLoad = max(rep.MaxLoad, float64(load[id]))
		rep.MaxLeaders = max(rep.MaxLeaders, float64(leads[id]))
	}
	rep.MeanLoad = float64(len(s.groups)*s.cfg.Replicas) / float64(len(load))
	rep.MeanLeaders = float64(len(s.groups)) / float64(len(load))
}

func sameSet(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
