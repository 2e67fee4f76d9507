package ring

import (
	"errors"
	"math"
	"testing"
)

func TestEnsureDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	want := Config{Partitions: 64, Replicas: 3, VNodes: 64, Epsilon: 0.25}
	if c != want {
		t.Fatalf("defaults = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c = Config{Partitions: -1, Replicas: 7, VNodes: -3, Epsilon: -0.5}
	c.EnsureDefaults()
	if c != (Config{Partitions: -1, Replicas: 7, VNodes: -3, Epsilon: -0.5}) {
		t.Fatalf("EnsureDefaults changed non-zero fields: %+v", c)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{Partitions: 3, Replicas: -1, VNodes: 0, Epsilon: math.NaN()}.Validate()
	for _, want := range []error{ErrPartitions, ErrReplicas, ErrVNodes, ErrEpsilon} {
		if !errors.Is(err, want) {
			t.Errorf("Validate() = %v, missing %v", err, want)
		}
	}
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Partitions: 1, Replicas: 1, VNodes: 1, Epsilon: 1e-9}, nil},
		{Config{Partitions: SlotCount, Replicas: 1, VNodes: 1, Epsilon: 0.25}, nil},
		{Config{Partitions: 2 * SlotCount, Replicas: 1, VNodes: 1, Epsilon: 0.25}, ErrPartitions},
		{Config{Partitions: 48, Replicas: 1, VNodes: 1, Epsilon: 0.25}, ErrPartitions},
		{Config{Partitions: 64, Replicas: 3, VNodes: 64, Epsilon: 0}, ErrEpsilon},
		{Config{Partitions: 64, Replicas: 3, VNodes: 64, Epsilon: math.Inf(1)}, ErrEpsilon},
	} {
		err := tc.cfg.Validate()
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%+v.Validate() = %v, want %v", tc.cfg, err, tc.want)
		}
	}
}

func TestPlaceRejects(t *testing.T) {
	if _, err := Place(Config{}, nil); !errors.Is(err, ErrNoNodes) {
		t.Errorf("empty membership: %v, want %v", err, ErrNoNodes)
	}
	nodes := []Node{{ID: 0}, {ID: 7}, {ID: 9}, {ID: 7}, {ID: 7}, {ID: 9}, {ID: 0}}
	_, err := Place(Config{Partitions: 3}, nodes)
	for _, want := range []error{ErrPartitions, ErrZeroID, ErrDuplicateID} {
		if !errors.Is(err, want) {
			t.Errorf("Place() = %v, missing %v", err, want)
		}
	}
	if got := len(err.(interface{ Unwrap() []error }).Unwrap()); got != 4 {
		t.Errorf("Place() = %v: %d errors, want 4 (partitions, zero, duplicates 7 and 9)", err, got)
	}
}
