//go:build race

package server

// raceDetector: the tests run under -race, which slows big copies many
// times over.
const raceDetector = true
