package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
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
