package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/faultfs"
)

// faultRoutes are the admin API's fault hooks (doc.go says when they
// exist); each takes effect at once and the same call with an empty body
// ({}) heals it.
func (a *API) faultRoutes(mux *http.ServeMux) {
	f := a.cfg.Faults
	// {"nodes":[2,3]}: from now on this node sends nothing to nodes 2 and 3
	// (raft messages, forwarded requests, snapshots). Set on both sides for
	// a partition, one side for a one-way cut.
	mux.HandleFunc("PUT /v1/fault/cut", func(w http.ResponseWriter, r *http.Request) {
		var body api.FaultCut
		if !decodeFault(w, r, &body) {
			return
		}
		f.Links.SetCut(body.Nodes)
		a.log.Warn("fault injection: links cut", "to", body.Nodes)
		_, _ = w.Write([]byte("ok\n"))
	})
	// {"offset_ms":-30000,"rate":2}: this node's clock reads 30 s behind
	// and its timers (the raft tick) run twice as fast.
	mux.HandleFunc("PUT /v1/fault/clock", func(w http.ResponseWriter, r *http.Request) {
		var body api.FaultClock
		if !decodeFault(w, r, &body) {
			return
		}
		if body.Rate == 0 {
			body.Rate = 1
		}
		if err := f.Clock.Skew(time.Duration(body.OffsetMS)*time.Millisecond, body.Rate); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.log.Warn("fault injection: clock skewed", "offset_ms", body.OffsetMS, "rate", body.Rate)
		_, _ = w.Write([]byte("ok\n"))
	})
	// {"sync_delay_ms":2000}: every fsync first stalls 2 s (a slow disk).
	// {"fail_writes":true}: every write and fsync fails (a dead disk); the
	// engine stops at its first failed write and the process exits, so
	// nothing unsynced is ever acknowledged.
	mux.HandleFunc("PUT /v1/fault/disk", func(w http.ResponseWriter, r *http.Request) {
		var body api.FaultDisk
		if !decodeFault(w, r, &body) {
			return
		}
		if body.SyncDelayMS < 0 || body.SyncDelayMS > 60_000 {
			http.Error(w, "sync_delay_ms: between 0 and 60000", http.StatusBadRequest)
			return
		}
		f.Disk.Set(faultfs.Fault{SyncDelay: time.Duration(body.SyncDelayMS) * time.Millisecond, FailWrites: body.FailWrites, FreeBytes: body.FreeBytes})
		a.log.Warn("fault injection: disk", "sync_delay_ms", body.SyncDelayMS, "fail_writes", body.FailWrites, "free_bytes", body.FreeBytes)
		_, _ = w.Write([]byte("ok\n"))
	})
	// {"at":"after-prepare"}: the process kills itself (SIGKILL) the next
	// time it reaches that failpoint (see api.CrashPoints); {} disarms.
	mux.HandleFunc("PUT /v1/fault/crash", func(w http.ResponseWriter, r *http.Request) {
		var body api.FaultCrash
		if !decodeFault(w, r, &body) {
			return
		}
		if body.At == "" {
			f.ArmCrash("")
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		if !slices.Contains(crashPoints, body.At) {
			http.Error(w, fmt.Sprintf("at: one of %v", crashPoints), http.StatusBadRequest)
			return
		}
		f.ArmCrash(body.At)
		a.log.Warn("fault injection: crash armed", "at", body.At)
		_, _ = w.Write([]byte("ok\n"))
	})
}

// crashPoints are the failpoints PUT /v1/fault/crash can arm.
var crashPoints = api.CrashPoints()

// decodeFault reads a fault's JSON body; false (after answering 400) if
// it is malformed.
func decodeFault(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, fmt.Sprintf("bad body: %v", err), http.StatusBadRequest)
		return false
	}
	return true
}
