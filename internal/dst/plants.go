package dst

import "github.com/kintsu/kintsu/internal/raftstore"

// plantConfig sets the engine's side of a planted bug; the disk's side
// (lazy fsync) is in disk.go, and the canary is in Sim.run.
func plantConfig(p Plant, cfg *raftstore.Config) {
	switch p {
	case PlantStaleReads:
		cfg.UnsafeStaleReads = true
	case PlantForgetVote:
		cfg.UnsafeLazyHardState = true
	case PlantReapply:
		cfg.UnsafeReapply = 3
	case PlantCompactAhead:
		cfg.UnsafeCompactAhead = true
	}
}
