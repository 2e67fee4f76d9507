// Package lint holds checks on Kintsu's source that run as tests: which
// package may depend on which (imports_test.go). It has no code of its
// own and nothing imports it.
package lint
