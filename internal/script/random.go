package script

import (
	"math"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// math.random and math.randomseed as Redis has them: its own rand48 (the
// same sequence on every machine), not the host's, one state per node
// running on from script to script as Redis's does (since Redis 7 scripts
// replicate their effects, not their randomness, so replicas never need
// the same numbers).

// rand48 is POSIX's lrand48 generator: x = (a*x + c) mod 2^48.
type rand48 struct{ x uint64 }

const (
	rand48A    = 0x5DEECE66D
	rand48C    = 0xB
	rand48Mask = 1<<48 - 1
	rand48Max  = math.MaxInt32 // REDIS_LRAND48_MAX
)

func newRand48() *rand48 { return &rand48{x: 0x1234ABCD330E} }

func (r *rand48) seed(s int32) { r.x = uint64(uint32(s))<<16 | 0x330E }

func (r *rand48) next() int32 {
	r.x = (rand48A*r.x + rand48C) & rand48Mask
	return int32(r.x >> 17)
}

// nodeRand is the node's generator, shared by its scripts.
var nodeRand = struct {
	sync.Mutex
	r *rand48
}{r: newRand48()}

func openRandom(L *lua.LState, m *lua.LTable) {
	m.RawSetString("random", L.NewFunction(func(L *lua.LState) int {
		nodeRand.Lock()
		n := nodeRand.r.next()
		nodeRand.Unlock()
		f := float64(n%rand48Max) / float64(rand48Max)
		switch L.GetTop() {
		case 0:
			L.Push(lua.LNumber(f))
		case 1:
			u := checkInt(L, 1)
			if u < 1 {
				L.ArgError(1, "interval is empty")
			}
			L.Push(lua.LNumber(math.Floor(f*float64(u)) + 1))
		case 2:
			l, u := checkInt(L, 1), checkInt(L, 2)
			if l > u {
				L.ArgError(2, "interval is empty")
			}
			L.Push(lua.LNumber(math.Floor(f*float64(u-l+1)) + float64(l)))
		default:
			L.RaiseError("wrong number of arguments")
		}
		return 1
	}))
	m.RawSetString("randomseed", L.NewFunction(func(L *lua.LState) int {
		s := int32(checkInt(L, 1))
		nodeRand.Lock()
		nodeRand.r.seed(s)
		nodeRand.Unlock()
		return 0
	}))
}

// checkInt is luaL_checkint: a number, or a string that reads as one,
// truncated.
func checkInt(L *lua.LState, n int) int64 { return toInt(float64(L.CheckNumber(n))) }
