package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	tmp := filepath.Join(volume, PlanFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(volume, PlanFile)); err != nil {
		return err
	}
	d, err := os.Open(volume)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
