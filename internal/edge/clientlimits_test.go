package edge

import (
	"testing"
	"time"
)

// Defaults, every problem reported at once, and negative values off.
func TestClientLimitsConfig(t *testing.T) {
	var l ClientLimits
	l.EnsureDefaults()
	if errs := l.Validate(); len(errs) > 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	e := l.Enforced(nil)
	if e.MaxClients != 10000 || e.ClientReadTimeout != 30*time.Second || e.QueryBufferLimit != 64<<20 || e.OutputHard != 256<<20 || e.ReplyBudget != 1<<30 || e.MaxMemory != 0 {
		t.Fatalf("default edge limits: %+v", e)
	}
	bad := ClientLimits{MaxClients: -1, QueryBufferLimit: 100 << 20, QueryBufferBudget: 1, OutputHard: 1, OutputSoft: 2, MaxMemoryPolicy: "allkeys-lru"}
	if errs := bad.Validate(); len(errs) != 5 {
		t.Fatalf("want every problem reported: %v", errs)
	}
	off := ClientLimits{OutputHard: -1, ClientReadTimeout: -1, QueryBufferBudget: -1}
	off.EnsureDefaults()
	if e := off.Enforced(nil); e.OutputHard != 0 || e.ClientReadTimeout != 0 || e.QueryBudget != 0 {
		t.Fatalf("negative limits are off: %+v", e)
	}
}
