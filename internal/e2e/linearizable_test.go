package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/chaos"
	"github.com/kintsu/kintsu/internal/launcher"
)

// TestLinearizableUnderLeaderKills runs the chaos suite's register
// workload (reads, writes, compare-and-sets on hot keys, checked with
// porcupine) while the node leading most partitions is killed with
// SIGKILL and restarted, again and again. The workload, the checker and
// their ability to fail (planted bugs) live in package chaos.
func TestLinearizableUnderLeaderKills(t *testing.T) {
	cfg := chaos.Config{
		Binary: binary, Nodes: 3, Partitions: 8, Clients: 8, Duration: 12 * time.Second,
		Nemeses: []string{"kill-leader"}, Workloads: []string{"register"},
		Progress: testLog{t},
	}
	for try := 0; ; try++ {
		cfg.Dir, cfg.Out = t.TempDir(), ""
		cfg.BasePort = 20000 + 10*rand.IntN(200) // chaos needs base+10000 below 32768
		sum, err := chaos.Run(context.Background(), cfg)
		var pe *launcher.PortError
		if errors.As(err, &pe) && try < 5 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !sum.OK || len(sum.Faults) == 0 {
			t.Fatalf("seed %d: %d faults, anomalies %+v", sum.Seed, len(sum.Faults), sum.Anomalies)
		}
		return
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
