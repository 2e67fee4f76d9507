package statemachine

import (
	"fmt"
	"strconv"

	"github.com/kintsu/kintsu/internal/codec"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/script"
)

// The cluster's function libraries (FUNCTION LOAD) live in the metadata
// group, like its ACL users: one record holding every library, and one
// holding the set's version, which nodes poll. A library arrives checked
// by the node that was given it (script.LoadLibrary: its code loads and
// registers these functions); here the set's own rules are kept, as
// Redis keeps them: a library's name is loaded once unless replaced, and
// a function's name belongs to one library.
const (
	CmdFunctionLoad   = "kintsu.function.load"   // replace(0|1) library (script.AppendLibrary)
	CmdFunctionDelete = "kintsu.function.delete" // name
	CmdFunctionFlush  = "kintsu.function.flush"
)

// Keys of the function records in the metadata group.
var (
	FunctionsKey        = []byte("functions")
	FunctionsVersionKey = []byte("functionsversion")
)

// Bounds of the cluster's libraries: each load rewrites the record.
const (
	MaxLibraries     = 10000
	MaxLibraryBytes  = 16 << 20 // all libraries' code together
	errCorruptLibSet = "ERR corrupt function libraries"
)

// FunctionSet is the cluster's libraries at one version.
type FunctionSet struct {
	Version uint64
	Libs    []*script.Library
}

// Marshal encodes the set as stored.
func (s *FunctionSet) Marshal() []byte {
	e := codec.Encoder(nil).Uvarint(s.Version).Uvarint(uint64(len(s.Libs)))
	for _, l := range s.Libs {
		e = script.AppendLibrary(e, l)
	}
	return e
}

// UnmarshalFunctions reads a stored set.
func UnmarshalFunctions(b []byte) (*FunctionSet, error) {
	d := codec.NewDecoder(b)
	s := &FunctionSet{Version: d.Uvarint()}
	n := d.Count()
	if n > MaxLibraries {
		d.Fail()
	}
	for ; n > 0 && d.Err() == nil; n-- {
		s.Libs = append(s.Libs, script.ReadLibrary(&d))
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return s, nil
}

// Lib is the library named name, nil if none.
func (s *FunctionSet) Lib(name string) *script.Library {
	for _, l := range s.Libs {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func loadFunctions(r interface {
	Get(key []byte) ([]byte, bool, error)
}) (*FunctionSet, string, error) {
	stored, ok, err := r.Get(FunctionsKey)
	if err != nil || !ok {
		return &FunctionSet{}, "", err
	}
	b, ok := kv.LoadString(stored)
	if !ok {
		return nil, errCorruptLibSet, nil
	}
	s, err := UnmarshalFunctions(b)
	if err != nil {
		return nil, errCorruptLibSet, nil
	}
	return s, "", nil
}

func storeFunctions(w kv.Writer, s *FunctionSet) error {
	s.Version++
	if err := w.Put(FunctionsKey, kv.StoredString(s.Marshal()), false); err != nil {
		return err
	}
	return w.Put(FunctionsVersionKey, kv.StoredString(strconv.AppendUint(nil, s.Version, 10)), false)
}

// ApplyFunctions applies the function commands (exported for fakes of the
// metadata group in other packages' tests). A refused change answers
// Redis's error and changes nothing.
func ApplyFunctions(w kv.Writer, args [][]byte, out []byte) ([]byte, error) {
	s, refusal, err := loadFunctions(w)
	if err != nil {
		return out, err
	}
	if refusal != "" {
		return resp.AppendError(out, refusal), nil
	}
	switch string(args[0]) {
	case CmdFunctionFlush:
		if len(s.Libs) == 0 {
			return resp.AppendSimple(out, "OK"), nil
		}
		s.Libs = nil
	case CmdFunctionDelete:
		if len(args) != 2 || s.Lib(string(args[1])) == nil {
			return resp.AppendError(out, "ERR Library not found"), nil
		}
		s.Libs = withoutLib(s.Libs, string(args[1]))
	case CmdFunctionLoad:
		if len(args) != 3 {
			return resp.AppendError(out, "ERR malformed function load"), nil
		}
		d := codec.NewDecoder(args[2])
		lib := script.ReadLibrary(&d)
		if d.Done() != nil || len(lib.Functions) == 0 {
			return resp.AppendError(out, "ERR malformed function load"), nil
		}
		if reply := s.add(lib, string(args[1]) == "1"); reply != "" {
			return resp.AppendError(out, reply), nil
		}
		if err := storeFunctions(w, s); err != nil {
			return out, err
		}
		return resp.AppendBulkString(out, lib.Name), nil
	default:
		return resp.AppendError(out, "ERR unknown metadata command"), nil
	}
	if err := storeFunctions(w, s); err != nil {
		return out, err
	}
	return resp.AppendSimple(out, "OK"), nil
}

// add puts lib in the set, answering Redis's refusal if it may not be.
func (s *FunctionSet) add(lib *script.Library, replace bool) string {
	old := s.Lib(lib.Name)
	if old != nil && !replace {
		return fmt.Sprintf("ERR Library '%s' already exists", lib.Name)
	}
	rest := withoutLib(s.Libs, lib.Name)
	total := len(lib.Code)
	for _, l := range rest {
		total += len(l.Code)
		for _, f := range l.Functions {
			for _, g := range lib.Functions {
				if f.Name == g.Name {
					return fmt.Sprintf("ERR Function %s already exists", g.Name)
				}
			}
		}
	}
	if len(rest) >= MaxLibraries || total > MaxLibraryBytes {
		return fmt.Sprintf("ERR the cluster keeps at most %d libraries of %d MiB together", MaxLibraries, MaxLibraryBytes>>20)
	}
	s.Libs = append(rest, lib)
	return ""
}

func withoutLib(libs []*script.Library, name string) []*script.Library {
	out := make([]*script.Library, 0, len(libs))
	for _, l := range libs {
		if l.Name != name {
			out = append(out, l)
		}
	}
	return out
}
