package dst

import (
	"slices"
	"time"
)

// scheduleFaults starts each kind of fault the seed's shape asks for.
// Every fault is drawn at an event, never inside an engine's cycle.
func (s *Sim) scheduleFaults() {
	sh := s.shape
	if sh.CrashEvery > 0 {
		s.repeat("crash", sh.CrashEvery, s.crashSome)
	}
	if sh.OutageEvery > 0 {
		s.repeat("outage", sh.OutageEvery, s.outage)
	}
	if sh.PartitionEvery > 0 {
		s.repeat("partition", sh.PartitionEvery, s.partition)
	}
	if sh.TransferEvery > 0 {
		s.repeat("transfer", sh.TransferEvery, s.transfer)
	}
	if sh.MoveEvery > 0 {
		s.repeat("move", sh.MoveEvery, s.move)
	}
	if sh.DiskFaultEvery > 0 {
		s.repeat("disk", sh.DiskFaultEvery, s.diskFault)
	}
	if sh.Skew {
		s.repeat("skew", 5*time.Second, s.skew)
	}
}

// repeat runs fn at exponential intervals of mean every until the heal.
func (s *Sim) repeat(kind string, every time.Duration, fn func()) {
	s.at(s.exp(every), kind, 0, 0, func() {
		if s.healed {
			return
		}
		fn()
		s.repeat(kind, every, fn)
	})
}

func (s *Sim) upNodes() []*node {
	var up []*node
	for _, n := range s.nodes {
		if n.up {
			up = append(up, n)
		}
	}
	return up
}

// crashSome powers a node off and back on after a while. At most a
// minority is down at once, so the cluster can make progress (the fault
// atlas of TigerBeetle: faults stay survivable).
func (s *Sim) crashSome() {
	if !s.mayCrash() {
		return
	}
	up := s.upNodes()
	n := up[s.rng.IntN(len(up))]
	s.fault("crash")
	n.crash(true, false)
	s.at(s.between(200*time.Millisecond, 3*time.Second), "restart", n.id, 0, func() { n.restart() })
}

func (s *Sim) mayCrash() bool {
	return len(s.nodes)-len(s.upNodes()) < (len(s.nodes)-1)/2
}

// outage: every node loses power at once (a datacenter's power cut), and
// comes back after a while, each at its own time. Nothing acknowledged
// may be lost: every acknowledgement waited for a majority's fsync.
func (s *Sim) outage() {
	s.fault("outage")
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		n.crash(true, false)
		s.at(s.between(200*time.Millisecond, 2*time.Second), "restart", n.id, 0, func() { n.restart() })
	}
}

// partition cuts links for a while in one of several modes.
func (s *Sim) partition() {
	nw := s.net
	ids := make([]uint64, len(s.nodes))
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	var cuts [][2]uint64
	mode := []string{"isolate", "one-way", "halves", "link", "swizzle"}[s.rng.IntN(5)]
	switch mode {
	case "isolate":
		x := ids[s.rng.IntN(len(ids))]
		for _, y := range ids {
			if y != x {
				cuts = append(cuts, [2]uint64{x, y}, [2]uint64{y, x})
			}
		}
	case "one-way": // x hears nobody but is heard (or the reverse)
		x := ids[s.rng.IntN(len(ids))]
		in := s.rng.IntN(2) == 0
		for _, y := range ids {
			if y != x {
				if in {
					cuts = append(cuts, [2]uint64{y, x})
				} else {
					cuts = append(cuts, [2]uint64{x, y})
				}
			}
		}
	case "halves":
		s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + s.rng.IntN(len(ids)-1)
		for _, x := range ids[:k] {
			for _, y := range ids[k:] {
				cuts = append(cuts, [2]uint64{x, y}, [2]uint64{y, x})
			}
		}
	case "link":
		x, y := ids[s.rng.IntN(len(ids))], ids[s.rng.IntN(len(ids))]
		if x != y {
			cuts = append(cuts, [2]uint64{x, y}, [2]uint64{y, x})
		}
	case "swizzle":
		// FoundationDB's swizzle-clog: clog a random subset of links one by
		// one, then unclog them in a random order.
		var links [][2]uint64
		for _, x := range ids {
			for _, y := range ids {
				if x != y && s.rng.IntN(2) == 0 {
					links = append(links, [2]uint64{x, y})
				}
			}
		}
		for i, l := range links {
			link := l
			s.at(time.Duration(i)*s.between(10*time.Millisecond, 200*time.Millisecond), "clog", link[0], link[1], func() {
				nw.clog[link] = s.between(100*time.Millisecond, time.Second)
			})
		}
		order := slices.Clone(links)
		s.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for i, l := range order {
			link := l
			s.at(2*time.Second+time.Duration(i)*s.between(10*time.Millisecond, 300*time.Millisecond), "unclog", link[0], link[1], func() {
				delete(nw.clog, link)
			})
		}
		s.fault("swizzle")
		return
	}
	if len(cuts) == 0 {
		return
	}
	s.fault("partition-" + mode)
	for _, c := range cuts {
		nw.cut[c] = true
	}
	s.at(s.between(200*time.Millisecond, 3200*time.Millisecond), "unpartition", 0, 0, func() {
		for _, c := range cuts {
			delete(nw.cut, c)
		}
	})
}

// transfer asks a group's leader to hand leadership to another node.
func (s *Sim) transfer() {
	up := s.upNodes()
	if len(up) == 0 {
		return
	}
	g := uint64(1 + s.rng.IntN(s.shape.Groups))
	for _, n := range up {
		if n.eng.Leader(g) == n.id {
			to := s.nodes[s.rng.IntN(len(s.nodes))]
			if to != n {
				s.fault("transfer")
				n.eng.TransferGroupLeader(g, to.id)
				n.busy = true
			}
			return
		}
	}
}

// skew drifts a node's tick rate and jumps its wall clock.
func (s *Sim) skew() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	n.drift = s.rng.Int64N(100_000) - 50_000 // ±5%
	off := time.Duration(s.rng.Int64N(int64(2*time.Second))) - time.Second
	_ = n.clk.Skew(off, 1)
	s.fault("skew")
}

// diskFault arms a fault on one node's disk (disk.go says which).
func (s *Sim) diskFault() {
	up := s.upNodes()
	if len(up) == 0 {
		return
	}
	n := up[s.rng.IntN(len(up))]
	n.disk.arm(n)
}

// heal ends the faults: every link works, every node is up, clocks run
// true, and the cluster must converge before the run ends.
func (s *Sim) heal() {
	s.healed = true
	s.net.quiet = true
	clear(s.net.cut)
	clear(s.net.clog)
	for _, n := range s.nodes {
		n.drift = 0
		n.disk.disarm(n)
		if !n.up {
			n.restart()
		}
	}
}
