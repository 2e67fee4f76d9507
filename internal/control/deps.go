package control

import (
	"context"
	"errors"
)

// Peer calls the control plane serves (the node's peer mux dispatches
// them here) and makes. The names are part of the wire format between
// nodes: never reuse or rename one.
const (
	MethodClusterMap     = "m" // -> the cluster map (JSON) from the local metadata replica
	MethodGroupInfo      = "g" // group -> its membership (JSON), from its leader
	MethodChangeReplicas = "c" // group, kind, node: one membership step, on the group's leader
	MethodJoin           = "j" // api.NodeRecord JSON -> api.JoinJSON JSON
)

// ErrMalformed answers a peer call whose body cannot be decoded.
var ErrMalformed = errors.New("malformed peer call")

// WriteFunc proposes args to group through the node's router (leader
// hints, retries, deduplication) and returns the RESP reply; it gives up
// at ctx's deadline. The loops depend on this shape, not on the router,
// so the router may change without touching them.
type WriteFunc func(ctx context.Context, group uint64, args [][]byte) []byte

// Caller sends a call to a peer and returns its answer
// (transport.Transport.Call).
type Caller interface {
	Call(ctx context.Context, node uint64, method string, body []byte) ([]byte, error)
}

// Addresses is told where a node listens for peers
// (transport.Transport.SetPeer).
type Addresses interface {
	SetPeer(node uint64, addr string)
}

// Peers calls nodes and learns their addresses (*transport.Transport).
type Peers interface {
	Caller
	Addresses
}

// okReply is the RESP reply of a metadata write that applied.
const okReply = "+OK\r\n"
