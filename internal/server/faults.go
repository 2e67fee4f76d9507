package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kintsu/kintsu/internal/faultfs"
)

// faultRoutes are the admin API's fault hooks. They exist only on a node
// started with --fault-injection (kintsu chaos drives them); each takes
// effect at once and the same call with an empty body ({}) heals it.
func (n *Node) faultRoutes(mux *http.ServeMux) {
	// {"nodes":[2,3]}: from now on this node sends nothing to nodes 2 and 3
	// (raft messages, forwarded requests, snapshots). Set on both sides for
	// a partition, one side for a one-way cut.
	mux.HandleFunc("PUT /v1/fault/cut", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Nodes []uint64 `json:"nodes"`
		}
		if !decodeFault(w, r, &body) {
			return
		}
		n.tr.SetCut(body.Nodes)
		n.log.Warn("fault injection: links cut", "to", body.Nodes)
		_, _ = w.Write([]byte("ok\n"))
	})
	// {"offset_ms":-30000,"rate":2}: this node's clock reads 30 s behind
	// and its timers (the raft tick) run twice as fast.
	mux.HandleFunc("PUT /v1/fault/clock", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			OffsetMS int64   `json:"offset_ms"`
			Rate     float64 `json:"rate"`
		}
		if !decodeFault(w, r, &body) {
			return
		}
		if body.Rate == 0 {
			body.Rate = 1
		}
		if err := n.clock.Skew(time.Duration(body.OffsetMS)*time.Millisecond, body.Rate); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.log.Warn("fault injection: clock skewed", "offset_ms", body.OffsetMS, "rate", body.Rate)
		_, _ = w.Write([]byte("ok\n"))
	})
	// {"sync_delay_ms":2000}: every fsync first stalls 2 s (a slow disk).
	// {"fail_writes":true}: every write and fsync fails (a dead disk); the
	// engine stops at its first failed write and the process exits, so
	// nothing unsynced is ever acknowledged.
	mux.HandleFunc("PUT /v1/fault/disk", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			SyncDelayMS int64 `json:"sync_delay_ms"`
			FailWrites  bool  `json:"fail_writes"`
		}
		if !decodeFault(w, r, &body) {
			return
		}
		if body.SyncDelayMS < 0 || body.SyncDelayMS > 60_000 {
			http.Error(w, "sync_delay_ms: between 0 and 60000", http.StatusBadRequest)
			return
		}
		n.disk.Set(faultfs.Fault{SyncDelay: time.Duration(body.SyncDelayMS) * time.Millisecond, FailWrites: body.FailWrites})
		n.log.Warn("fault injection: disk", "sync_delay_ms", body.SyncDelayMS, "fail_writes", body.FailWrites)
		_, _ = w.Write([]byte("ok\n"))
	})
}

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
