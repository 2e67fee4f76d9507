package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kintsu/kintsu/internal/durable"
)

// PlanFile is the plan's name on the pod's volume, beside the data dir.
const PlanFile = "kube-plan.json"

// Load reads the volume's plan; nil, nil when there is none.
func Load(volume string) (*Plan, error) {
	b, err := os.ReadFile(filepath.Join(volume, PlanFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil || p.ID == 0 || p.Mode != Bootstrap && p.Mode != Join {
		return nil, fmt.Errorf("%s: not a plan Kintsu wrote (%v); a volume is never guessed at: move it aside to start this pod afresh", filepath.Join(volume, PlanFile), err)
	}
	return &p, nil
}

// Save writes the plan durably: written, synced, then renamed into place,
// so a crash leaves the old plan or the new one, never half of one.
func Save(volume string, p Plan) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return durable.ReplaceFile(vfs.Default, volume, PlanFile, append(b, '\n'))
}

// Wipe clears what a removed node left on the volume: its data dir and
// its plan (the plan last, so a crash midway wipes again).
func Wipe(volume, dataDir string) error {
	if err := os.RemoveAll(dataDir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(volume, PlanFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
