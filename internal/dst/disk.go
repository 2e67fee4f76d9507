package dst

import (
	"errors"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var errDiskFault = errors.New("injected disk fault")

// disk is a node's simulated disk. It outlives the node's crashes: a crash
// replaces fs by what a power loss leaves of it.
type disk struct {
	s     *Sim
	id    uint64
	fs    *vfs.MemFS
	fired bool // an armed fault fired since the last crash
}

func newDisk(s *Sim, id uint64) *disk {
	return &disk{s: s, id: id, fs: vfs.NewCrashableMem()}
}

// crash keeps exactly what was synced.
func (d *disk) crash(torn bool) {
	d.fs = d.fs.CrashClone(vfs.CrashCloneCfg{})
	d.fired = false
}

func (d *disk) faulted() bool { return d.fired }

// arm and disarm: faults are not available on this disk yet.
func (d *disk) arm()    {}
func (d *disk) disarm() {}
