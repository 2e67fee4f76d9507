// Package pki makes and loads the certificates a Kintsu cluster trusts:
// one certificate authority per cluster, a certificate per node and one
// per client user, as PEM files in a certs directory, and the TLS
// configurations built from them.
//
// Files in a certs directory:
//
//	ca.crt                          the cluster's CA certificate (every node and client)
//	ca.key                          the CA's key (kept off the nodes in production)
//	node.crt, node.key              this node's certificate and key
//	client.<user>.crt, .key         a client user's certificate and key
//
// Invariants:
//   - A node's identity is the URI SAN kintsu://node/<id> of a certificate
//     signed by the cluster's CA. Nothing else names a node: a client
//     certificate (no such URI, client-auth use only), a certificate of
//     another CA or an expired one is never taken for a node.
//   - Peers speak TLS 1.3 and both sides present a node certificate;
//     client ports accept TLS 1.2 and up and verify a client certificate
//     when one is given.
//   - Keys are written 0600, and nothing existing is overwritten unless
//     asked: losing a CA key by accident would orphan every certificate.
package pki
