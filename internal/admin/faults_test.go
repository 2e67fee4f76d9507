package admin

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/clock"
	"github.com/kintsu/kintsu/internal/faultfs"
)

type fakeLinks struct{ cut []uint64 }

func (l *fakeLinks) SetCut(nodes []uint64) { l.cut = nodes }

type fakeDisk struct{ fault faultfs.Fault }

func (d *fakeDisk) Set(f faultfs.Fault) { d.fault = f }

// Without fault injection the hooks do not exist at all.
func TestNoFaultRoutesWithoutFaultInjection(t *testing.T) {
	h := New(newFixture(t).cfg).Handler()
	for _, path := range []string{"/v1/fault/cut", "/v1/fault/disk", "/v1/fault/clock", "/v1/fault/crash"} {
		if code, _ := do(t, h, http.MethodPut, path, "{}"); code != http.StatusNotFound {
			t.Errorf("PUT %s without fault injection = %d", path, code)
		}
	}
}

// The hooks validate their input, change nothing when they refuse it,
// take effect at once, and heal with {}.
func TestFaultRoutes(t *testing.T) {
	f := newFixture(t)
	links, disk, clk := &fakeLinks{}, &fakeDisk{}, clock.New()
	armed := []string{}
	f.cfg.Faults = &Faults{Links: links, Clock: clk, Disk: disk, ArmCrash: func(at string) { armed = append(armed, at) }}
	h := New(f.cfg).Handler()
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/v1/fault/clock", `{"offset_ms":1500,"rate":2}`, 200},
		{"/v1/fault/clock", `{"rate":50}`, 400},
		{"/v1/fault/clock", `{"offset_ms":7200000}`, 400},
		{"/v1/fault/clock", `{"speed":2}`, 400},
		{"/v1/fault/disk", `{"sync_delay_ms":300}`, 200},
		{"/v1/fault/disk", `{"sync_delay_ms":-1}`, 400},
		{"/v1/fault/disk", `{"sync_delay_ms":60001}`, 400},
		{"/v1/fault/disk", `not json`, 400},
		{"/v1/fault/cut", `{"nodes":[2]}`, 200},
		{"/v1/fault/cut", `{"nodes":"2"}`, 400},
		{"/v1/fault/crash", `{"at":"somewhere"}`, 400},
		{"/v1/fault/crash", `{"at":"after-prepare","extra":1}`, 400},
		{"/v1/fault/crash", `{"at":"after-decision"}`, 200},
	} {
		if code, body := do(t, h, http.MethodPut, c.path, c.body); code != c.want || (code == 200 && body != "ok\n") {
			t.Fatalf("PUT %s %s = %d %q, want %d", c.path, c.body, code, body, c.want)
		}
	}
	if off, rate := clk.Skewed(); off != 1500*time.Millisecond || rate != 2 {
		t.Errorf("clock skew %v ×%v after refused changes", off, rate)
	}
	if disk.fault != (faultfs.Fault{SyncDelay: 300 * time.Millisecond}) {
		t.Errorf("disk fault %+v", disk.fault)
	}
	if !slices.Equal(links.cut, []uint64{2}) {
		t.Errorf("links cut to %v", links.cut)
	}
	if !slices.Equal(armed, []string{api.FailAfterDecision}) {
		t.Errorf("crash armed %q", armed)
	}
	for _, path := range []string{"/v1/fault/cut", "/v1/fault/disk", "/v1/fault/clock", "/v1/fault/crash"} {
		if code, _ := do(t, h, http.MethodPut, path, "{}"); code != 200 {
			t.Fatalf("healing %s answered %d", path, code)
		}
	}
	if off, rate := clk.Skewed(); off != 0 || rate != 1 {
		t.Errorf("clock not healed: %v ×%v", off, rate)
	}
	if disk.fault != (faultfs.Fault{}) || len(links.cut) != 0 {
		t.Errorf("not healed: disk %+v, links cut to %v", disk.fault, links.cut)
	}
	if !slices.Equal(armed, []string{api.FailAfterDecision, ""}) {
		t.Errorf("crash not disarmed: %q", armed)
	}
}
