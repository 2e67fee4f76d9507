package script

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/failure"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/ring"
	"github.com/kintsu/kintsu/internal/txn"
)

// store is one partition's state in memory, as a snapshot reads it.
type store struct {
	index uint64
	data  map[string][]byte // version (8 bytes) + stored value
	kv.MemSubs
}

func newStore() *store { return &store{index: 10, data: map[string][]byte{}} }

func (m *store) Get(k []byte) ([]byte, bool, error) {
	v, ok := m.data[string(k)]
	if !ok {
		return nil, false, nil
	}
	return v[8:], true, nil
}
func (m *store) Version(k []byte) (uint64, error) {
	if v, ok := m.data[string(k)]; ok {
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, nil
}
func (m *store) Applied() (uint64, error)                  { return m.index, nil }
func (m *store) TxnGet(byte, []byte) ([]byte, bool, error) { return nil, false, nil }
func (m *store) NoLocks() bool                             { return true }
func (m *store) NowMS() int64                              { return 1_700_000_000_000 }
func (m *store) NewVersion(k []byte) (uint64, error)       { return m.VersionAt(k, m.index), nil }
func (m *store) Put(k, v []byte, _ bool) error {
	m.data[string(k)] = append(binary.BigEndian.AppendUint64(nil, m.index), v...)
	return nil
}
func (m *store) PutBlind(k, v []byte) error { return m.Put(k, v, false) }
func (m *store) Del(k []byte) error         { delete(m.data, string(k)); return nil }

func (m *store) do(t *testing.T, c string) []byte {
	t.Helper()
	m.index++
	args := bytesArgs(strings.Fields(c))
	out, err := kv.Exec(m, command.Lookup(args[0]), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func bytesArgs(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

const testPartitions = 4

// k1 and k2 are keys of partition 0 of testPartitions.
var k1, k2 = localKey("k"), "{" + localKey("k") + "}2"

func localKey(prefix string) string {
	for i := 0; ; i++ {
		k := prefix + itoa(i)
		if ring.PartitionOf(ring.Slot([]byte(k)), testPartitions) == 0 {
			return k
		}
	}
}

// eval runs body on partition 0 of st and answers the script's reply
// and its effects.
func eval(t *testing.T, st *store, body string, keys []string, argv ...string) (reply, effects []byte) {
	t.Helper()
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second}
	return evalP(t, st, p, Step{Body: []byte(body), Keys: bytesArgs(keys), Argv: bytesArgs(argv)})
}

func evalP(t *testing.T, st *store, p Params, steps ...Step) (reply, effects []byte) {
	t.Helper()
	out, err := Serve(st, Args(p, steps...))
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := resp.ParseValue(out)
	if err != nil {
		t.Fatalf("malformed result %q", out)
	}
	if v.Kind == '-' {
		return out, nil
	}
	if v.Kind != '*' || len(v.Array) != 2 {
		t.Fatalf("result %q is not [reply, effects]", out)
	}
	if len(v.Array[1].Str) == 0 {
		return v.Array[0].Str, nil
	}
	return v.Array[0].Str, v.Array[1].Str
}

func TestRepliesConvertAsRedisDoes(t *testing.T) {
	st := newStore()
	st.do(t, "SET "+k1+" v")
	st.do(t, "RPUSH "+k2+" a b")
	for _, c := range []struct{ body, want string }{
		{"return 1", ":1\r\n"},
		{"return 3.99", ":3\r\n"},
		{"return -2.5", ":-2\r\n"},
		{"return 'x'", "$1\r\nx\r\n"},
		{"return true", ":1\r\n"},
		{"return false", "$-1\r\n"},
		{"return nil", "$-1\r\n"},
		{"return {1, 'a', {2}, nil, 4}", "*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n"},
		{"return {ok='fine'}", "+fine\r\n"},
		{"return {err='My Error'}", "-My Error\r\n"},
		{"return redis.error_reply('xx')", "-ERR xx\r\n"},
		{"return redis.error_reply('CODE xx')", "-CODE xx\r\n"},
		{"return redis.status_reply('fine')", "+fine\r\n"},
		{"return redis.call('get', KEYS[1])", "$1\r\nv\r\n"},
		{"return redis.call('get', '{" + k1 + "}none')", "$-1\r\n"},
		{"return type(redis.call('get', '{" + k1 + "}none'))", "$7\r\nboolean\r\n"},
		{"return redis.call('lrange', KEYS[2], 0, -1)", "*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
		{"return redis.call('set', KEYS[1], 'v')['ok']", "$2\r\nOK\r\n"},
		{"return redis.pcall('incr', KEYS[1])['err']", "$43\r\nERR value is not an integer or out of range\r\n"},
		{"return redis.call('ping')", "+PONG\r\n"},
		{"return redis.sha1hex('')", "$40\r\nda39a3ee5e6b4b0d3255bfef95601890afd80709\r\n"},
		{"return KEYS[1] .. ARGV[1] .. #ARGV", "$" + itoa(len(k1)+2) + "\r\n" + k1 + "a1\r\n"},
		{"return redis.call('incrby', 'n{" + k1 + "}', 1.5e1)", ":15\r\n"},
	} {
		got, _ := eval(t, st, c.body, []string{k1, k2}, "a")
		if string(got) != c.want {
			t.Errorf("%s: %q, want %q", c.body, got, c.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestScriptErrorsInRedisWords(t *testing.T) {
	st := newStore()
	st.do(t, "SET "+k1+" v")
	for _, c := range []struct{ body, want string }{
		{"return redis.call('incr', KEYS[1])", "-ERR value is not an integer or out of range script: "},
		{"return redis.call('nosuch')", "-ERR Unknown Redis command called from script script: "},
		{"return redis.call('kintsu.sweep', 'a', '1')", "-ERR Unknown Redis command called from script script: "},
		{"return redis.call('blpop', KEYS[1], 0)", "-ERR This Redis command is not allowed from script script: "},
		{"return redis.call('get')", "-ERR Wrong number of args calling Redis command from script script: "},
		{"return redis.call()", "-ERR Please specify at least one argument for this redis lib call script: "},
		{"return redis.call('get', {})", "-ERR Lua redis lib command arguments must be strings or integers script: "},
		{"return redis.call('get', 'elsewhere')", "-ERR Script attempted to access a non local key in a cluster node script: "},
		{"a = 1", "-ERR user_script:1: Attempt to modify a readonly table script: "},
		{"return b", "-ERR user_script:1: Script attempted to access nonexistent global variable 'b' script: "},
		{"error('boom')", "-ERR user_script:1: boom script: "},
		{"error({err='MY boom'})", "-MY boom script: "},
		{"return x(", "-ERR Error compiling script (new function): "},
		{"\n\nreturn redis.call('incr', KEYS[1])", "-ERR value is not an integer or out of range script: "},
	} {
		got, eff := eval(t, st, c.body, []string{k1})
		if !strings.HasPrefix(string(got), c.want) || eff != nil {
			t.Errorf("%s: %q (effects %v), want %q...", c.body, got, eff != nil, c.want)
		}
	}
	got, _ := eval(t, st, "\n\nreturn redis.call('incr', KEYS[1])", []string{k1})
	if !strings.HasSuffix(string(got), ", on @user_script:3.\r\n") {
		t.Errorf("error on line 3 says %q", got)
	}
}

// The sandbox reaches nothing outside: no files, processes, loaders, and
// globals do not persist.
func TestSandbox(t *testing.T) {
	st := newStore()
	for _, name := range []string{"os", "io", "debug", "package", "require", "dofile", "loadfile", "load", "loadstring", "setfenv", "getfenv", "collectgarbage", "print"} {
		got, _ := eval(t, st, "return rawget(_G, '"+name+"') == nil", nil)
		if string(got) != ":1\r\n" {
			t.Errorf("%s is reachable: %q", name, got)
		}
	}
	got, _ := eval(t, st, "return string.rep('x', 100000000)", nil)
	if !strings.Contains(string(got), "string.rep would make a string over") {
		t.Errorf("string.rep of 100 MB = %.60q", got)
	}
	// A global a script forces through rawset is gone on the next run.
	eval(t, st, "rawset(_G, 'leak', 1)", nil)
	if got, _ := eval(t, st, "return rawget(_G, 'leak') == nil", nil); string(got) != ":1\r\n" {
		t.Error("a global carried from one run to the next")
	}
}

func TestReadOnlyScriptsDoNotWrite(t *testing.T) {
	st := newStore()
	p := Params{Partitions: testPartitions, Timeout: time.Second}
	got, eff := evalP(t, st, p, Step{Body: []byte("return redis.call('set', KEYS[1], 'x')"), Keys: bytesArgs([]string{k1}), ReadOnly: true})
	if !strings.HasPrefix(string(got), "-ERR Write commands are not allowed from read-only scripts.") || eff != nil {
		t.Fatalf("EVAL_RO SET = %q, effects %v", got, eff != nil)
	}
}

// A script that writes and then fails keeps its writes, as in Redis; one
// stopped by a limit keeps none.
func TestEffectsOfFailedAndStoppedScripts(t *testing.T) {
	st := newStore()
	got, eff := eval(t, st, "redis.call('set', KEYS[1], 'x'); error('late')", []string{k1})
	if !strings.HasPrefix(string(got), "-ERR user_script:1: late") || eff == nil {
		t.Fatalf("a script failing after a write: %q, effects %v", got, eff != nil)
	}
	p := Params{Partitions: testPartitions, Timeout: 50 * time.Millisecond}
	got, eff = evalP(t, st, p, Step{Body: []byte("redis.call('set', KEYS[1], 'x'); while true do end"), Keys: bytesArgs([]string{k1})})
	if string(got) != "-"+errTimedOut+"\r\n" || eff != nil {
		t.Fatalf("a script past its time: %q, effects %v", got, eff != nil)
	}
	// pcall does not catch the time limit.
	got, _ = evalP(t, st, p, Step{Body: []byte("while true do pcall(function() while true do end end) end")})
	if string(got) != "-"+errTimedOut+"\r\n" {
		t.Fatalf("pcall caught the time limit: %q", got)
	}
}

func TestKillStopsARunningScript(t *testing.T) {
	st := newStore()
	done := make(chan []byte, 1)
	go func() {
		out, _ := Serve(st, Args(Params{Partitions: testPartitions, Timeout: 5 * time.Second}, Step{Body: []byte("while true do end")}))
		done <- out
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !Kill() {
		if time.Now().After(deadline) {
			t.Fatal("the script never started")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case out := <-done:
		if string(out) != "-"+errKilled+"\r\n" {
			t.Fatalf("a killed script answered %q", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SCRIPT KILL did not stop the script")
	}
}

func TestMalformedOperationsAreRefused(t *testing.T) {
	st := newStore()
	one := Step{Body: []byte("return 1")}
	for name, args := range map[string][][]byte{
		"short":                 {[]byte(Op)},
		"garbage params":        {[]byte(Op), []byte("\xff\xff")},
		"group of the metadata": Args(Params{Group: 1 << 32, Partitions: 4}, one),
		"no partitions":         Args(Params{}, one),
		"bad user":              Args(Params{Partitions: 4, Timeout: time.Second, User: "u +nosuch"}, one),
		"no steps":              Args(Params{Partitions: 4, Timeout: time.Second}),
		"two steps":             Args(Params{Partitions: 4, Timeout: time.Second}, one, one),
	} {
		out, err := Serve(st, args)
		if err != nil || !bytes.HasPrefix(out, []byte("-ERR")) {
			t.Errorf("%s: %q, %v", name, out, err)
		}
	}
}

func TestACLChecksEveryCall(t *testing.T) {
	st := newStore()
	p := Params{Partitions: testPartitions, Timeout: time.Second, User: "app on nopass ~* -@all +get"}
	if got, _ := evalP(t, st, p, Step{Body: []byte("return redis.call('get', KEYS[1])"), Keys: bytesArgs([]string{k1})}); string(got) != "$-1\r\n" {
		t.Errorf("an allowed GET: %q", got)
	}
	got, eff := evalP(t, st, p, Step{Body: []byte("return redis.call('set', KEYS[1], 'x')"), Keys: bytesArgs([]string{k1})})
	if !strings.HasPrefix(string(got), "-ERR ACL failure in script: User app has no permissions to run the 'set' command") || eff != nil {
		t.Errorf("a denied SET: %q", got)
	}
}

func TestLocksStandInTheWay(t *testing.T) {
	st := &lockedStore{store: newStore()}
	out, err := Serve(st, Args(Params{Partitions: testPartitions, Timeout: time.Second}, Step{Body: []byte("return redis.call('get', KEYS[1])"), Keys: bytesArgs([]string{k1})}))
	if err != nil {
		t.Fatal(err)
	}
	if sig, _, ok := failure.SignalOf(out); !ok || sig != failure.Locked {
		t.Fatalf("a script reading a locked key answered %q", out)
	}
}

// lockedStore holds a write lock on every key.
type lockedStore struct{ *store }

func (l *lockedStore) NoLocks() bool { return false }
func (l *lockedStore) TxnGet(table byte, k []byte) ([]byte, bool, error) {
	if table != txn.TableLocks {
		return nil, false, nil
	}
	return (&txn.Lock{Writer: &txn.Ref{ID: txn.ID{7}, Priority: 1}}).Encode(), true, nil
}

func TestTransactionsWithScripts(t *testing.T) {
	st := newStore()
	st.do(t, "SET "+k2+" w")
	p := Params{Partitions: testPartitions, Timeout: time.Second, Multi: true, Watches: []txn.Watch{{Key: []byte(k2), Version: st.index}}}
	steps := []Step{
		{Cmd: bytesArgs([]string{"SET", k1, "1"})},
		{Body: []byte("return redis.call('incr', KEYS[1])"), Keys: bytesArgs([]string{k1})},
		{Body: []byte("return x(")},
		{Cmd: bytesArgs([]string{"GET", k1})},
	}
	got, eff := evalP(t, st, p, steps...)
	if !strings.HasPrefix(string(got), "*4\r\n+OK\r\n:2\r\n-ERR Error compiling script") || !strings.HasSuffix(string(got), "$1\r\n2\r\n") || eff == nil {
		t.Fatalf("a transaction with scripts answered %q (effects %v)", got, eff != nil)
	}
	st.do(t, "SET "+k2+" changed")
	got, eff = evalP(t, st, p, steps...)
	if string(got) != "*-1\r\n" || eff != nil {
		t.Fatalf("after a watched key changed: %q (effects %v), want a null array and nothing done", got, eff != nil)
	}
}

// A Go function that calls redis.pcall over and over (string.gsub with
// it as the replacement) runs no Lua instruction between calls, where
// the VM checks its deadline: the calls themselves must stop the run.
func TestLimitsStopCallsMadeFromGo(t *testing.T) {
	st := newStore()
	p := Params{Partitions: testPartitions, Timeout: 50 * time.Millisecond}
	start := time.Now()
	got, eff := evalP(t, st, p, Step{Body: []byte("return string.gsub(string.rep('x ', 300000), '(%S+)', redis.pcall)")})
	if string(got) != "-"+errTimedOut+"\r\n" || eff != nil {
		t.Fatalf("a run of Go-called redis.pcall past its time: %.80q", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the run stopped %v after a 50 ms limit", d)
	}
}

// A script that writes and then returns an error reply worded like a
// limit's keeps its writes: only a real stop drops them.
func TestLimitWordsInAReplyAreJustWords(t *testing.T) {
	st := newStore()
	got, eff := eval(t, st, "redis.call('set', KEYS[1], 'x'); return {err='"+errTimedOut+"'}", []string{k1})
	if string(got) != "-"+errTimedOut+"\r\n" || eff == nil {
		t.Fatalf("%q, effects %v: the script's writes were dropped", got, eff != nil)
	}
}
