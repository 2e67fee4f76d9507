// Package control holds the loops that keep a Kintsu cluster in shape.
// It holds no node: each loop is a type built from a Config of small
// interfaces and funcs, and run by the node until it stops.
package control
