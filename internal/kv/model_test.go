package kv

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// model is a deliberately plain reference for Redis 7's string commands:
// strings live in a map[string]string, keys holding any other type in a
// second map (by their raw stored value). It shares no code with kv; replies
// are spelled out by hand.
type model struct {
	str   map[string]string
	other map[string]string
	exp   map[string]int64 // expiry times (Unix ms) of keys that have one
	now   int64
}

func newModel() *model {
	return &model{str: map[string]string{}, other: map[string]string{}, exp: map[string]int64{}, now: testNow}
}

// purge forgets keys whose time has come, as Redis's lazy expiry does on
// every access.
func (m *model) purge() {
	for k, at := range m.exp {
		if at <= m.now {
			delete(m.str, k)
			delete(m.other, k)
			delete(m.exp, k)
		}
	}
}

// raw returns the live state as kv stores it, for comparison with a
// memStore's live keys.
func (m *model) raw() map[string]string {
	m.purge()
	out := make(map[string]string, len(m.str)+len(m.other))
	for k, v := range m.str {
		out[k] = sv(v)
		if at, ok := m.exp[k]; ok {
			out[k] = svAt(v, at)
		}
	}
	for k, v := range m.other {
		out[k] = v
		if at, ok := m.exp[k]; ok {
			out[k] = string(withExpiry([]byte(v), at))
		}
	}
	return out
}

func (m *model) exists(k string) bool {
	_, s := m.str[k]
	_, o := m.other[k]
	return s || o
}

// setStr stores a string and drops any expiry (SET, GETSET, MSET...).
func (m *model) setStr(k, v string) {
	delete(m.other, k)
	delete(m.exp, k)
	m.str[k] = v
}

// keepStr changes a string's value and keeps its expiry (INCR, APPEND).
func (m *model) keepStr(k, v string) {
	at, ok := m.exp[k]
	m.setStr(k, v)
	if ok {
		m.exp[k] = at
	}
}

// expireIn reads an expiry argument as Redis 7's expire code does:
// relative or absolute, seconds or ms; ok=false on overflow.
func expireIn(now, n int64, seconds, relative bool) (int64, bool) {
	if seconds {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return 0, false
		}
		n *= 1000
	}
	if relative {
		if n > math.MaxInt64-now {
			return 0, false
		}
		n += now
	}
	return n, true
}

func asciiLower(b []byte) string {
	out := []byte(string(b))
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

// modelArity is Redis's arity table for these commands.
var modelArity = map[string]int{
	"get": 2, "strlen": 2, "exists": -2, "mget": -2, "set": -3, "setnx": 3, "getset": 3,
	"del": -2, "incr": 2, "decr": 2, "incrby": 3, "decrby": 3, "append": 3, "mset": -3,
	"expire": -3, "pexpire": -3, "expireat": -3, "pexpireat": -3, "persist": 2, "setex": 4, "psetex": 4,
	"ttl": 2, "pttl": 2, "expiretime": 2, "pexpiretime": 2,
}

// string2ll is a direct port of Redis's util.c string2ll.
func string2ll(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) >= 21 {
		return 0, false
	}
	if len(s) == 1 && s[0] == '0' {
		return 0, true
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
		if len(s) == 0 {
			return 0, false
		}
	}
	if s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	v := uint64(s[0] - '0')
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > math.MaxUint64/10 {
			return 0, false
		}
		v *= 10
		if v > math.MaxUint64-uint64(c-'0') {
			return 0, false
		}
		v += uint64(c - '0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return int64(-v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// cstr is what C's %s prints of an argument: up to the first NUL.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// redisUnknownCommandFull is server.c's commandCheckExistence message.
// complete reports whether every argument was printed whole.
func redisUnknownCommandFull(args [][]byte) (msg string, complete bool) {
	complete = true
	var list []byte
	for _, a := range args[1:] {
		if len(list) >= 128 {
			complete = false // arguments left unprinted
			break
		}
		c := cstr(a)
		if n := 128 - len(list); len(c) > n {
			c, complete = c[:n], false
		}
		list = append(append(append(list, '\''), c...), '\'', ' ')
	}
	name := cstr(args[0])
	if len(name) > 128 {
		name = name[:128]
	}
	return fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", name, list), complete
}

func redisUnknownCommand(args [][]byte) string {
	msg, _ := redisUnknownCommandFull(args)
	return msg
}

func errLine(msg string) string {
	return "-" + strings.NewReplacer("\r", " ", "\n", " ").Replace(msg) + "\r\n"
}

func bulkOrNil(v string, ok bool) string {
	if !ok {
		return rNil
	}
	return rBulk(v)
}

func (m *model) apply(args [][]byte) string {
	if len(args) == 0 {
		return rSyntax
	}
	name := asciiLower(args[0])
	ar, ok := modelArity[name]
	if !ok {
		return errLine(redisUnknownCommand(args))
	}
	n := len(args)
	if ar > 0 && n != ar || ar < 0 && n < -ar || name == "mset" && n%2 == 0 {
		return rArity(name)
	}
	k := string(args[1])
	m.purge()
	switch name {
	case "get":
		if _, o := m.other[k]; o {
			return rWrongType
		}
		v, ok := m.str[k]
		return bulkOrNil(v, ok)
	case "strlen":
		if _, o := m.other[k]; o {
			return rWrongType
		}
		return rInt(int64(len(m.str[k])))
	case "exists":
		c := 0
		for _, a := range args[1:] {
			if m.exists(string(a)) {
				c++
			}
		}
		return rInt(int64(c))
	case "mget":
		out := "*" + strconv.Itoa(n-1) + "\r\n"
		for _, a := range args[1:] {
			v, ok := m.str[string(a)]
			out += bulkOrNil(v, ok)
		}
		return out
	case "set":
		var nx, xx, get, ifeq, ifne, keep bool
		var cmp, unit, arg string
		for j := 3; j < n; j++ {
			cond := nx || xx || ifeq || ifne
			switch o := asciiLower(args[j]); {
			case o == "nx" && (nx || !cond):
				nx = true
			case o == "xx" && (xx || !cond):
				xx = true
			case (o == "ifeq" || o == "ifne") && !cond && j+1 < n:
				ifeq, ifne = o == "ifeq", o == "ifne"
				cmp = string(args[j+1])
				j++
			case o == "get":
				get = true
			case o == "keepttl" && unit == "":
				keep = true
			case (o == "ex" || o == "px" || o == "exat" || o == "pxat") && !keep && (unit == "" || unit == o) && j+1 < n:
				unit, arg = o, string(args[j+1])
				j++
			default:
				return rSyntax
			}
		}
		var at int64
		if unit != "" {
			e, ok := string2ll([]byte(arg))
			if !ok {
				return rNotInt
			}
			if e <= 0 || unit == "ex" || unit == "exat" && e > math.MaxInt64/1000 {
				if e <= 0 {
					return "-ERR invalid expire time in 'set' command\r\n"
				}
			}
			if at, ok = expireIn(m.now, e, unit == "ex" || unit == "exat", unit == "ex" || unit == "px"); !ok || at <= 0 {
				return "-ERR invalid expire time in 'set' command\r\n"
			}
		}
		_, isOther := m.other[k]
		if (get || ifeq || ifne) && isOther {
			return rWrongType
		}
		old, had := m.str[k]
		found := m.exists(k)
		reply := rOK
		if get {
			reply = bulkOrNil(old, had)
		}
		if nx && found || xx && !found || ifeq && (!had || old != cmp) || ifne && had && old == cmp {
			if get {
				return reply
			}
			return rNil
		}
		oldAt, hadAt := m.exp[k]
		m.setStr(k, string(args[2]))
		switch {
		case at != 0:
			m.exp[k] = at
		case keep && hadAt:
			m.exp[k] = oldAt
		}
		return reply
	case "setnx":
		if m.exists(k) {
			return rInt(0)
		}
		m.setStr(k, string(args[2]))
		return rInt(1)
	case "getset":
		if _, o := m.other[k]; o {
			return rWrongType
		}
		old, had := m.str[k]
		m.setStr(k, string(args[2]))
		return bulkOrNil(old, had)
	case "del":
		c := 0
		for _, a := range args[1:] {
			if m.exists(string(a)) {
				delete(m.str, string(a))
				delete(m.other, string(a))
				delete(m.exp, string(a))
				c++
			}
		}
		return rInt(int64(c))
	case "incr", "decr", "incrby", "decrby":
		delta := big.NewInt(1)
		if name == "incrby" || name == "decrby" {
			d, ok := string2ll(args[2])
			if !ok {
				return rNotInt
			}
			if name == "decrby" && d == math.MinInt64 {
				return "-ERR decrement would overflow\r\n"
			}
			delta.SetInt64(d)
		}
		if name == "decr" || name == "decrby" {
			delta.Neg(delta)
		}
		if _, o := m.other[k]; o {
			return rWrongType
		}
		cur := int64(0)
		if v, ok := m.str[k]; ok {
			if cur, ok = string2ll([]byte(v)); !ok {
				return rNotInt
			}
		}
		res := new(big.Int).Add(big.NewInt(cur), delta)
		if !res.IsInt64() {
			return rOverflow
		}
		m.keepStr(k, strconv.FormatInt(res.Int64(), 10))
		return rInt(res.Int64())
	case "append":
		if _, o := m.other[k]; o {
			return rWrongType
		}
		nv := m.str[k] + string(args[2])
		if len(nv) > MaxValueBytes {
			return rTooLarge
		}
		m.keepStr(k, nv)
		return rInt(int64(len(nv)))
	case "mset":
		for j := 1; j < n; j += 2 {
			m.setStr(string(args[j]), string(args[j+1]))
		}
		return rOK
	case "expire", "pexpire", "expireat", "pexpireat":
		// Redis parses the options before the time (expireGenericCommand).
		var nx, xx, gt, lt bool
		for _, a := range args[3:] {
			switch asciiLower(a) {
			case "nx":
				nx = true
			case "xx":
				xx = true
			case "gt":
				gt = true
			case "lt":
				lt = true
			default:
				// addReplyErrorFormat turns CR and LF into spaces.
				return "-ERR Unsupported option " + strings.NewReplacer("\r", " ", "\n", " ").Replace(string(cstr(a))) + "\r\n"
			}
		}
		if nx && (xx || gt || lt) {
			return "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
		}
		if gt && lt {
			return "-ERR GT and LT options at the same time are not compatible\r\n"
		}
		when, ok := string2ll(args[2])
		if !ok {
			return rNotInt
		}
		at, ok := expireIn(m.now, when, name == "expire" || name == "expireat", name == "expire" || name == "pexpire")
		if !ok {
			return "-ERR invalid expire time in '" + name + "' command\r\n"
		}
		if !m.exists(k) {
			return rInt(0)
		}
		cur, has := m.exp[k]
		if nx && has || xx && !has || gt && (!has || at <= cur) || lt && has && at >= cur {
			return rInt(0)
		}
		if at <= m.now {
			delete(m.str, k)
			delete(m.other, k)
			delete(m.exp, k)
		} else {
			m.exp[k] = at
		}
		return rInt(1)
	case "persist":
		if _, has := m.exp[k]; !has || !m.exists(k) {
			return rInt(0)
		}
		delete(m.exp, k)
		return rInt(1)
	case "setex", "psetex":
		e, ok := string2ll(args[2])
		if !ok {
			return rNotInt
		}
		at, ok := expireIn(m.now, e, name == "setex", true)
		if e <= 0 || !ok || at <= 0 {
			return "-ERR invalid expire time in '" + name + "' command\r\n"
		}
		m.setStr(k, string(args[3]))
		m.exp[k] = at
		return rOK
	case "ttl", "pttl", "expiretime", "pexpiretime":
		if !m.exists(k) {
			return rInt(-2)
		}
		at, has := m.exp[k]
		if !has {
			return rInt(-1)
		}
		t := at
		if name == "ttl" || name == "pttl" {
			t = max(at-m.now, 0)
		}
		if name == "ttl" || name == "expiretime" {
			t = (t + 500) / 1000
		}
		return rInt(t)
	}
	panic("unreachable: " + name)
}

// knownDivergence names the skipped bug test that explains why kv's reply
// to args differs from Redis 7's, or "" if it must match exactly. In every
// listed case both answer an error and change nothing.
func knownDivergence(args [][]byte) string {
	if len(args) == 0 {
		return ""
	}
	name := asciiLower(args[0])
	ar, known := modelArity[name]
	if !known {
		_, complete := redisUnknownCommandFull(args)
		for _, a := range args {
			if bytes.IndexByte(a, 0) >= 0 {
				complete = false
			}
		}
		if !complete {
			return "TestUnknownCommandBudget"
		}
		return ""
	}
	n := len(args)
	if ar > 0 && n != ar || ar < 0 && n < -ar {
		return ""
	}
	if name == "decrby" {
		if d, ok := string2ll(args[2]); ok && d == math.MinInt64 {
			return "TestDecrbyMinMessage"
		}
	}
	if name == "set" {
		for _, o := range args[3:] {
			for _, opt := range []string{"nx", "xx", "ifeq", "ifne", "get", "keepttl", "ex", "px", "exat", "pxat"} {
				if strings.EqualFold(string(o), opt) && asciiLower(o) != opt {
					return "TestSetOptionsAreASCII"
				}
			}
		}
	}
	return ""
}

// compareStep applies args to both and reports any difference.
func compareStep(s *memStore, m *model, args [][]byte) error {
	got, err := Apply(s, args, nil)
	if err != nil {
		return fmt.Errorf("storage error %v", err)
	}
	want := m.apply(args)
	if bug := knownDivergence(args); bug != "" {
		if !bytes.HasPrefix(got, []byte("-")) || !strings.HasPrefix(want, "-") {
			return fmt.Errorf("known divergence (%s) but not both errors:\n got  %q\n want %q", bug, got, want)
		}
	} else if string(got) != want {
		return fmt.Errorf("reply differs:\n got  %q\n want %q", got, want)
	}
	if rest, err := parseReply(got); err != nil || len(rest) != 0 {
		return fmt.Errorf("malformed reply %q: %v, %d trailing bytes", got, err, len(rest))
	}
	if d := diffState(s.live(), m.raw()); d != "" {
		return fmt.Errorf("state differs after the command:\n%s", d)
	}
	return nil
}

// gen produces random commands over a small key space.
type gen struct{ r *rand.Rand }

var (
	genKeys = []string{"a", "b", "c", "d", "e"}
	genInts = []string{"0", "1", "-1", "2", "7", "-7", "100", "-100", maxI, minI, "9223372036854775806",
		"-9223372036854775807", "4611686018427387904", "-4611686018427387904", "123456789"}
	genBadInts = []string{"", "abc", "+1", " 1", "01", "-0", "1.5", "9223372036854775808", "123456789012345678901", "-"}
	genStrs    = []string{"x", "hello", "a\r\nb", "\x00", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "é"}
	genSetOpts = []string{"NX", "XX", "GET", "nx", "xx", "get", "EX", "10", "px", "KEEPTTL", "exat", "BAD", "IFEQ", "ifne", "x", "hello", "PX", "1500", "pxat", "EX"}
	// genTimes are expiry arguments: short, long, past, absolute around
	// the test clock, and overflowing.
	genTimes   = []string{"1", "2", "3", "10", "1500", "0", "-1", "1700000000", "1700000000005", "1700000004000", maxI, minI, "x"}
	genExpOpts = []string{"NX", "XX", "GT", "LT", "nx", "gt", "BAD"}
)

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) key() string             { return g.pick(genKeys) }

func (g *gen) val() string {
	switch p := g.r.IntN(100); {
	case p < 55:
		return g.pick(genInts)
	case p < 70:
		return g.pick(genBadInts)
	default:
		return g.pick(genStrs)
	}
}

func (g *gen) casing(name string) string {
	switch g.r.IntN(3) {
	case 0:
		return strings.ToUpper(name)
	case 1:
		return name
	}
	b := []byte(name)
	for i := range b {
		if g.r.IntN(2) == 0 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
	}
	return string(b)
}

func (g *gen) keys(min, max int) []string {
	out := make([]string, min+g.r.IntN(max-min+1))
	for i := range out {
		out[i] = g.key()
	}
	return out
}

func (g *gen) command() [][]byte {
	var a []string
	switch g.r.IntN(21) {
	case 0, 1:
		a = []string{"set", g.key(), g.val()}
		for range g.r.IntN(4) {
			a = append(a, g.pick(genSetOpts))
		}
	case 2:
		a = []string{"setnx", g.key(), g.val()}
	case 3:
		a = []string{"getset", g.key(), g.val()}
	case 4:
		a = []string{"get", g.key()}
	case 5:
		a = []string{"strlen", g.key()}
	case 6:
		a = append([]string{"exists"}, g.keys(1, 4)...)
	case 7:
		a = append([]string{"mget"}, g.keys(1, 4)...)
	case 8:
		a = append([]string{"del"}, g.keys(1, 3)...)
	case 9:
		a = []string{g.pick([]string{"incr", "decr"}), g.key()}
	case 10, 11:
		a = []string{g.pick([]string{"incrby", "decrby"}), g.key(), g.val()}
	case 12:
		a = []string{"append", g.key(), g.val()}
	case 13:
		a = []string{"mset"}
		for range 1 + g.r.IntN(3) {
			a = append(a, g.key(), g.val())
		}
	case 17, 18:
		a = []string{g.pick([]string{"expire", "pexpire", "expireat", "pexpireat"}), g.key(), g.pick(genTimes)}
		for range g.r.IntN(3) {
			a = append(a, g.pick(genExpOpts))
		}
	case 19:
		a = []string{g.pick([]string{"ttl", "pttl", "expiretime", "pexpiretime", "persist"}), g.key()}
	case 20:
		a = []string{g.pick([]string{"setex", "psetex"}), g.key(), g.pick(genTimes), g.val()}
	case 14:
		a = []string{g.pick([]string{"foo", "ping", "bitfield_x", "lcsx"})}
		for range g.r.IntN(3) {
			a = append(a, g.val())
		}
	default: // wrong arity: a valid command with an argument dropped or added
		a = g.stringsOf(g.command())
		if len(a) > 1 && g.r.IntN(2) == 0 {
			a = a[:len(a)-1]
		} else {
			a = append(a, g.val())
		}
	}
	a[0] = g.casing(a[0])
	return bargs(a...)
}

func (g *gen) stringsOf(args [][]byte) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

// putForeign stores a value of another type directly in both, as a command
// kv does not implement yet would.
func putForeign(s *memStore, m *model, k string) {
	if _, ok := s.m[k]; !ok {
		s.created++
	}
	s.m[k] = []byte(foreign)
	delete(m.str, k)
	delete(m.exp, k)
	m.other[k] = foreign
}

func TestModelRandom(t *testing.T) {
	rng, _ := testRand(t)
	sequences, steps := 60, 400
	if testing.Short() {
		sequences = 10
	}
	for seq := range sequences {
		g := &gen{r: rand.New(rand.NewPCG(rng.Uint64(), uint64(seq)))}
		s, m := newMemStore(), newModel()
		putForeign(s, m, g.key())
		var history []string
		for step := range steps {
			if g.r.IntN(8) == 0 { // time passes: some keys expire
				d := int64(g.r.IntN(2500))
				s.now += d
				m.now += d
			}
			if g.r.IntN(50) == 0 {
				k := g.key()
				putForeign(s, m, k)
				history = append(history, "(store another type at "+k+")")
				continue
			}
			args := g.command()
			history = append(history, showArgs(args))
			if err := compareStep(s, m, args); err != nil {
				from := max(0, len(history)-12)
				t.Fatalf("sequence %d step %d: %s: %v\nlast commands:\n  %s", seq, step, showArgs(args), err, strings.Join(history[from:], "\n  "))
			}
		}
		s.check(t)
		if t.Failed() {
			t.Fatalf("sequence %d", seq)
		}
	}
}

func TestString2llModel(t *testing.T) {
	// The model's string2ll and kv's ParseInt must agree on every value the
	// generators use and on a sweep of boundary spellings.
	inputs := append(append(append([]string{}, genInts...), genBadInts...), genStrs...)
	for _, s := range []string{"18446744073709551615", "18446744073709551616", "-18446744073709551615", "99999999999999999999", "10000000000000000000"} {
		inputs = append(inputs, s)
	}
	for _, s := range inputs {
		a, aok := string2ll([]byte(s))
		b, bok := ParseInt([]byte(s))
		if aok != bok || aok && a != b {
			t.Errorf("%q: string2ll = %d, %v; ParseInt = %d, %v", s, a, aok, b, bok)
		}
	}
}
