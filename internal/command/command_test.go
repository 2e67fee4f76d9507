package command_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/kintsu/kintsu/internal/command"
	_ "github.com/kintsu/kintsu/internal/kv" // registers the data commands
)

func args(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// byFirstByte puts keys into partitions by their first byte.
func byFirstByte(k []byte) uint64 {
	if len(k) == 0 {
		return 0
	}
	return uint64(k[0])
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		err   string // "unknown", "arity" or ""
		keys  []int
		group uint64
		cross bool
	}{
		{args: []string{"GET", "a"}, keys: []int{1}, group: 'a'},
		{args: []string{"set", "b", "v", "NX"}, keys: []int{1}, group: 'b'},
		{args: []string{"MSET", "a1", "1", "a2", "2"}, keys: []int{1, 3}, group: 'a'},
		{args: []string{"MSET", "a1", "1", "b2", "2"}, keys: []int{1, 3}, group: 'a', cross: true},
		{args: []string{"del", "x", "y", "x"}, keys: []int{1, 2, 3}, group: 'x', cross: true},
		{args: []string{"mset", "a", "1", "b"}, err: "arity"},
		{args: []string{"get"}, err: "arity"},
		{args: []string{"get", "a", "b"}, err: "arity"},
		{args: []string{"nosuch", "a"}, err: "unknown"},
		{args: []string{"kintsu.expired", "a"}, err: "unknown"}, // internal: never a client's
		{args: []string{""}, err: "unknown"},
	} {
		c, err := command.Decode(args(tc.args...), byFirstByte)
		var unknown *command.UnknownError
		var arity *command.ArityError
		switch {
		case tc.err == "unknown" && !errors.As(err, &unknown), tc.err == "arity" && !errors.As(err, &arity), tc.err == "" && err != nil:
			t.Errorf("Decode(%q): err %v, want %s", tc.args, err, tc.err)
			continue
		case tc.err != "":
			continue
		}
		if !slices.Equal(c.Keys, tc.keys) || c.Group != tc.group || c.Cross != tc.cross || len(c.Args) != len(tc.args) {
			t.Errorf("Decode(%q) = keys %v group %d cross %v, want %v %d %v", tc.args, c.Keys, c.Group, c.Cross, tc.keys, tc.group, tc.cross)
		}
	}
}

func TestLookupIsCaseInsensitiveAndExact(t *testing.T) {
	for _, name := range []string{"get", "GET", "Get", "kintsu.expired"} {
		if command.Lookup([]byte(name)) == nil {
			t.Errorf("Lookup(%q) = nil", name)
		}
	}
	for _, bad := range []string{"", "ge", "gett", "get ", "g\x00et", "\u212Aeys", string(make([]byte, 1000))} {
		if s := command.Lookup([]byte(bad)); s != nil {
			t.Errorf("Lookup(%q) = %s", bad, s.Name)
		}
	}
}

func TestSpecsListsNoInternalCommand(t *testing.T) {
	specs := command.Specs()
	if len(specs) == 0 {
		t.Fatal("no commands")
	}
	for i, s := range specs {
		if s.Is(command.Internal) {
			t.Errorf("%s is internal but listed", s.Name)
		}
		if i > 0 && specs[i-1].Name >= s.Name {
			t.Errorf("not sorted: %s before %s", specs[i-1].Name, s.Name)
		}
	}
}

func TestRegisterRefusesDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second GET was registered")
		}
	}()
	command.Register(&command.Spec{Name: "get", Arity: 2})
}

// FuzzDecode: no argument list makes Decode panic, and what it returns is
// usable: keys within the arguments, a spec whose arity holds.
func FuzzDecode(f *testing.F) {
	for _, s := range [][]string{{"get", "a"}, {"mset", "a", "1", "b", "2"}, {"MSET", "a"}, {"del"}, {"exists", "a", "b", "c"}, {"kintsu.expired", "k"}, {"txn.prepare", "x"}} {
		b := []byte{}
		for _, a := range s {
			b = append(b, a...)
			b = append(b, 0)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var a [][]byte
		for len(in) > 0 {
			i := slices.Index(in, 0)
			if i < 0 {
				i = len(in)
			}
			a = append(a, in[:i])
			in = in[min(i+1, len(in)):]
		}
		if len(a) == 0 {
			return
		}
		c, err := command.Decode(a, byFirstByte)
		if err != nil {
			return
		}
		if c.Spec.Is(command.Internal) || !c.Spec.CheckArity(a) {
			t.Fatalf("Decode(%q) accepted %s", a, c.Spec.Name)
		}
		for _, k := range c.Keys {
			if k <= 0 || k >= len(a) {
				t.Fatalf("Decode(%q): key position %d", a, k)
			}
		}
	})
}

// BenchmarkLookup is what one name lookup costs: the unit that decode once
// saves four of per SET on every replica.
func BenchmarkLookup(b *testing.B) {
	name := []byte("SET")
	for b.Loop() {
		if command.Lookup(name) == nil {
			b.Fatal("no set")
		}
	}
}

// BenchmarkDecode is the edge's one decode of a SET: lookup, arity, keys
// and partition.
func BenchmarkDecode(b *testing.B) {
	a := args("SET", "key:1", "value")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := command.Decode(a, byFirstByte); err != nil {
			b.Fatal(err)
		}
	}
}
