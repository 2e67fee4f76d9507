package rdb

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes. The fuzzer's input is a payload
// without its footer, and the footer is added with a correct checksum:
// random bytes would otherwise almost never get past the CRC, and the
// decoders behind it would go untested. Parse must not panic, must
// refuse with one of its two errors, and whatever it accepts must be a
// valid value that Dump and Parse carry through unchanged.
func FuzzParse(f *testing.F) {
	// Big seeds (the live test's largest payloads) make each run slower
	// and minimizing what the fuzzer finds in them take minutes, with
	// every worker busy minimizing rather than fuzzing; the small ones
	// reach every decoder.
	seed := func(p []byte) {
		if len(p) > footerLen && len(p) <= 1024 {
			f.Add(p[:len(p)-footerLen])
		}
	}
	for _, p := range readGolden(f) {
		seed(p)
	}
	for _, c := range legacyCases() {
		seed(c.payload)
	}
	for _, c := range hostileCases() {
		seed(c.payload)
	}
	for _, v := range []*Value{
		{Kind: String, Str: []byte("hello")},
		{Kind: String, Str: []byte("-12345")},
		{Kind: List, Elems: strs("a", "", "1000000", "-1")},
		{Kind: Set, Elems: strs("a", "b", "7")},
		{Kind: ZSet, Scores: []ScoredMember{{[]byte("m"), 1.5}, {[]byte("n"), -2}}},
		{Kind: Hash, Pairs: pairs("f", "v", "g", "12")},
	} {
		seed(Dump(v))
	}
	const budget = 4 << 20 // keeps each run fast; ParseLimit's bound is tested apart
	f.Fuzz(func(t *testing.T, body []byte) {
		// As given: mostly a test of the footer checks.
		if _, err := ParseLimit(body, budget); err != nil && !errors.Is(err, ErrBadFormat) && err != ErrVersionOrChecksum {
			t.Fatalf("Parse returned an error of neither kind: %v", err)
		}
		if len(body) == 0 {
			return
		}
		// The decoders do not look at the version, so one will do.
		v, err := ParseLimit(payloadOf(body[0], body[1:], Version), budget)
		if err != nil {
			if !errors.Is(err, ErrBadFormat) && err != ErrVersionOrChecksum {
				t.Fatalf("Parse returned an error of neither kind: %v", err)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid value: %v", err)
		}
		// Dump is a function of the value, order included, so equal
		// payloads mean equal values.
		p := Dump(v)
		again, err := Parse(p)
		if err != nil {
			t.Fatalf("Parse(Dump(Parse(input))) = %v", err)
		}
		if !bytes.Equal(Dump(again), p) {
			t.Fatalf("Dump and Parse changed the value:\n%s\n%s", describe(v), describe(again))
		}
	})
}
