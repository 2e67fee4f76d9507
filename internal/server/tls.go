package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/control"
	"github.com/kintsu/kintsu/internal/pki"
	"github.com/kintsu/kintsu/internal/statemachine"
	"github.com/kintsu/kintsu/internal/transport"
)

// TLS on every port (Config.CertsDir): the client (RESP) and admin
// listeners serve the node's certificate and verify a client certificate
// when one is given; the peer port is mutual TLS between nodes of the
// cluster's CA (package transport). Without CertsDir every port is
// plaintext: what in-process tests build, and what `kintsu server`
// accepts only with --insecure.

// setupTLS loads the node's certificates, wraps the client and admin
// listeners and arms the transport. It runs before anything is served.
func (n *Node) setupTLS() error {
	// Only the join may come from a node that does not know the cluster yet.
	n.tr.OpenMethods(control.MethodJoin)
	if n.cfg.CertsDir == "" {
		return nil
	}
	certs, err := pki.LoadNode(n.cfg.CertsDir, n.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("--certs-dir: %w", err)
	}
	n.respLn = tls.NewListener(n.respLn, certs.ClientServer())
	n.httpLn = tls.NewListener(n.httpLn, certs.ClientServer())
	n.tr.SetTLS(transport.TLS{
		Server: certs.PeerServer(),
		Client: func(node uint64) *tls.Config {
			if node == statemachine.ReservedNodeID {
				// The --join seed, whose id is not known yet: any node of
				// the cluster's CA.
				return certs.PeerClient(0)
			}
			return certs.PeerClient(node)
		},
	})
	return nil
}

// checkJoiner refuses a join whose node id is not the caller's
// certificate's: a certificate admits one node, under its own id.
func checkJoiner(ctx context.Context, body []byte) error {
	caller, ok := transport.PeerNode(ctx)
	if !ok {
		return nil // --insecure: nothing vouches for anyone
	}
	var req api.NodeRecord
	if err := json.Unmarshal(body, &req); err != nil {
		return control.ErrMalformed
	}
	if req.ID != caller {
		return fmt.Errorf("node %d's certificate cannot join as node %d", caller, req.ID)
	}
	return nil
}
