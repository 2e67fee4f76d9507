package script

import (
	"strings"
	"testing"
	"time"

	"github.com/kintsu/kintsu/internal/ring"
)

func TestLoadLibraryAsRedisDoes(t *testing.T) {
	lib, err := LoadLibrary([]byte("#!lua name=mylib\n" +
		"redis.register_function('f1', function(keys, args) return 1 end)\n" +
		"redis.register_function{function_name='f2', callback=function() return 2 end, flags={'no-writes', 'allow-oom'}, description='two'}"))
	if err != nil {
		t.Fatal(err)
	}
	if lib.Name != "mylib" || len(lib.Functions) != 2 {
		t.Fatalf("loaded %+v", lib)
	}
	f2 := lib.Functions[1]
	if f2.Name != "f2" || !f2.HasDesc || f2.Desc != "two" || strings.Join(f2.Flags.Names(), ",") != "no-writes,allow-oom" {
		t.Fatalf("f2 is %+v", f2)
	}
	for _, c := range []struct{ code, want string }{
		{"redis.register_function('f', function() end)", "ERR Missing library metadata"},
		{"#!lua", "ERR Invalid library metadata"},
		{"#!lua\nx", "ERR Library name was not given"},
		{"#!lua name=a name=b\nx", "ERR Invalid metadata value, name argument was given multiple times"},
		{"#!lua foo=bar\nx", "ERR Invalid metadata value given: foo=bar"},
		{"#!lua name=a-b\nx", "ERR Library names can only contain"},
		{"#!tcl name=a\nx", "ERR Engine 'tcl' not found"},
		{"#!lua name=a\nreturn 1", "ERR No functions registered"},
		{"#!lua name=a\nreturn x(", "ERR Error compiling function"},
		{"#!lua name=a\nreturn math.random()", "nonexistent global variable 'math'"},
		{"#!lua name=a\nreturn redis.call('ping')", "nonexistent global variable 'call'"},
		{"#!lua name=a\nreturn redis.setresp(3)", "nonexistent global variable 'setresp'"},
		{"#!lua name=a\nx = 1", "Attempt to modify a readonly table"},
		{"#!lua name=a\nredis.x = 1", "Attempt to modify a readonly table"},
		{"#!lua name=a\nwhile 1 do end", "FUNCTION LOAD timeout"},
		{"#!lua name=a\nredis.register_function('f', function() end, 3)", "wrong number of arguments to redis.register_function"},
		{"#!lua name=a\nredis.register_function('f', 1)", "second argument to redis.register_function must be a function"},
		{"#!lua name=a\nredis.register_function({}, function() end)", "first argument to redis.register_function must be a string"},
		{"#!lua name=a\nredis.register_function('f-1', function() end)", "Library names can only contain"},
		{"#!lua name=a\nredis.register_function('f', function() end)\nredis.register_function('f', function() end)", "Function already exists in the library"},
		{"#!lua name=a\nredis.register_function(1)", "only applicable to Lua table"},
		{"#!lua name=a\nredis.register_function{callback=function() end}", "must get a function name argument"},
		{"#!lua name=a\nredis.register_function{function_name='f'}", "must get a callback argument"},
		{"#!lua name=a\nredis.register_function{function_name='f', callback=function() end, flags={'bogus'}}", "unknown flag given"},
		{"#!lua name=a\nredis.register_function{function_name='f', callback=function() end, what=1}", "unknown argument given to redis.register_function"},
	} {
		_, err := LoadLibrary([]byte(c.code))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.code, err, c.want)
		}
	}
}

// fcall runs function name of code on partition 0 of st.
func fcall(t *testing.T, st *store, code, name string, keys []string, argv ...string) (reply, effects []byte) {
	t.Helper()
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second}
	return evalP(t, st, p, Step{Body: []byte(code), Function: name, Keys: bytesArgs(keys), Argv: bytesArgs(argv)})
}

func TestFunctionsRunWithTheFullAPI(t *testing.T) {
	st := newStore()
	code := "#!lua name=lib\n" +
		"local lib = redis\n" +
		"redis.register_function('set', function(keys, args) return redis.call('set', keys[1], args[1]) end)\n" +
		"redis.register_function('keys', function(keys, args) return KEYS end)\n" +
		"redis.register_function('again', function() lib.register_function('x', function() end) end)\n" +
		"redis.register_function('poke', function() lib.math = math end)\n" +
		"redis.register_function('fail', function() return redis.call('incr', 'n') end)\n" +
		"redis.register_function{function_name='ro', callback=function(keys) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}}"
	if reply, effects := fcall(t, st, code, "set", []string{k1}, "v"); string(reply) != "+OK\r\n" || effects == nil {
		t.Fatalf("set: %q, effects %q", reply, effects)
	}
	for _, c := range []struct{ fn, want string }{
		{"keys", "Script attempted to access nonexistent global variable 'KEYS' script: keys, on @user_function:"},
		{"again", "redis.register_function can only be called on FUNCTION LOAD command script: again"},
		{"poke", "Attempt to modify a readonly table script: poke"},
		{"nosuch", "ERR Function not found"},
	} {
		reply, _ := fcall(t, st, code, c.fn, []string{k1})
		if !strings.Contains(string(reply), c.want) {
			t.Errorf("%s: %q, want %q", c.fn, reply, c.want)
		}
	}
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second}
	reply, _ := evalP(t, st, p, Step{Body: []byte(code), Function: "ro", Keys: bytesArgs([]string{k1}), ReadOnly: true})
	if !strings.Contains(string(reply), "Write commands are not allowed from read-only scripts") {
		t.Errorf("a no-writes function wrote: %q", reply)
	}
}

func TestShebangFlags(t *testing.T) {
	for _, c := range []struct {
		body    string
		flags   string
		shebang bool
		err     string
	}{
		{"return 1", "", false, ""},
		{"#!lua\nreturn 1", "", true, ""},
		{"#!lua flags=no-writes,allow-stale\nreturn 1", "no-writes,allow-stale", true, ""},
		{"#!lua flags=\nreturn 1", "", true, ""},
		{"#!lua flags=nope\nreturn 1", "", true, "Unexpected flag in script shebang: nope"},
		{"#!lua name=x\nreturn 1", "", true, "Unknown lua shebang option: name=x"},
		{"#!perl\nreturn 1", "", true, "Unexpected engine in script shebang: #!perl"},
		{"#!lua", "", true, "Invalid script shebang"},
	} {
		flags, shebang, _, err := Shebang([]byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || shebang != c.shebang || strings.Join(flags.Names(), ",") != c.flags {
			t.Errorf("%q: %v %v %v", c.body, flags.Names(), shebang, err)
		}
	}
	// The line is left out, so lines keep their numbers.
	st := newStore()
	reply, _ := eval(t, st, "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", []string{k1})
	if string(reply) != "$-1\r\n" {
		t.Fatalf("reply %q", reply)
	}
	reply, _ = eval(t, st, "#!lua\nerror('x')", nil)
	if !strings.Contains(string(reply), "user_script:2: x") {
		t.Fatalf("reply %q", reply)
	}
}

// A script that declares no keys runs where the first key it touches
// lives: it stops, to run there, and nothing of it is kept.
func TestFloatingScriptsMoveToTheirFirstKey(t *testing.T) {
	st := newStore()
	other := ""
	for i := 0; other == ""; i++ {
		if k := "o" + itoa(i); partitionOf(k) == 2 {
			other = k
		}
	}
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second, Float: true}
	reply, effects := evalP(t, st, p, Step{Body: []byte("redis.call('ping'); redis.call('set', '" + other + "', 1); return 1")})
	if g, ok := Moved(append([]byte(nil), reply...)); !ok || g != 2 || effects != nil {
		t.Fatalf("reply %q effects %q, want moved to 2", reply, effects)
	}
	// Once it touched its partition's keys, another's is refused.
	reply, _ = evalP(t, st, p, Step{Body: []byte("redis.call('set', '" + k1 + "', 1); return redis.call('set', '" + other + "', 1)")})
	if !strings.Contains(string(reply), "non local key") {
		t.Fatalf("reply %q", reply)
	}
	// Without Float, the first key pins nothing.
	p.Float = false
	reply, _ = evalP(t, st, p, Step{Body: []byte("return redis.call('set', '" + other + "', 1)")})
	if !strings.Contains(string(reply), "non local key") {
		t.Fatalf("reply %q", reply)
	}
}

func partitionOf(k string) int {
	return ring.PartitionOf(ring.Slot([]byte(k)), testPartitions)
}

// Over maxmemory a script without flags runs, and its writes that may
// grow memory fail as Redis's do.
func TestDenyOOMRefusesGrowingWrites(t *testing.T) {
	st := newStore()
	st.do(t, "SET "+k1+" v")
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second}
	step := Step{Body: []byte("return redis.pcall('set', KEYS[1], 'w')['err'] .. '|' .. redis.call('get', KEYS[1]) .. '|' .. redis.call('del', KEYS[1])"), Keys: bytesArgs([]string{k1}), DenyOOM: true}
	reply, _ := evalP(t, st, p, step)
	if want := "OOM command not allowed when used memory > 'maxmemory'.|v|1"; !strings.Contains(string(reply), want) {
		t.Fatalf("reply %q, want %q", reply, want)
	}
}

// math.random is Redis's rand48: the same sequence for the same seed on
// every machine, and randomseed takes a numeric string as Lua 5.1's does.
func TestRandomIsRedisRand48(t *testing.T) {
	r := newRand48()
	r.seed(10)
	a := r.next()
	r.seed(10)
	if b := r.next(); a != b {
		t.Fatalf("same seed, %d then %d", a, b)
	}
	// POSIX's lrand48 after srand48(0): 366850414 (glibc agrees).
	r.seed(0)
	if got := r.next(); got != 366850414 {
		t.Fatalf("lrand48 after srand48(0) = %d, want 366850414", got)
	}
	st := newStore()
	one, _ := eval(t, st, "math.randomseed(ARGV[1]); return tostring(math.random())", nil, "10")
	two, _ := eval(t, st, "math.randomseed(ARGV[1]); return tostring(math.random())", nil, "10")
	three, _ := eval(t, st, "math.randomseed(ARGV[1]); return tostring(math.random())", nil, "20")
	if string(one) != string(two) || string(two) == string(three) {
		t.Fatalf("seeded randoms %q %q %q", one, two, three)
	}
	if reply, _ := eval(t, st, "return math.random(5, 1)", nil); !strings.Contains(string(reply), "interval is empty") {
		t.Fatalf("math.random(5, 1): %q", reply)
	}
}

func TestLoadstringTakesTextOnly(t *testing.T) {
	st := newStore()
	if reply, _ := eval(t, st, "return loadstring('return 1 + 1')()", nil); string(reply) != ":2\r\n" {
		t.Fatalf("loadstring of text: %q", reply)
	}
	if reply, _ := eval(t, st, "local f, err = loadstring('\\27Lua'); return {tostring(f), err}", nil); !strings.Contains(string(reply), "binary chunks are not allowed") {
		t.Fatalf("loadstring of a binary chunk: %q", reply)
	}
	if reply, _ := eval(t, st, "return loadstring('x = 1')()", nil); !strings.Contains(string(reply), "readonly table") {
		t.Fatalf("a loaded chunk wrote a global: %q", reply)
	}
}

func TestACLCheckCmd(t *testing.T) {
	st := newStore()
	p := Params{Group: 0, Partitions: testPartitions, Timeout: 2 * time.Second, User: "bob on nopass ~x* +set"}
	for _, c := range []struct{ body, want string }{
		{"return redis.acl_check_cmd('set', 'xx', 1)", ":1\r\n"},
		{"return redis.acl_check_cmd('hset', 'xx', 'f', 1)", "$-1\r\n"},
		{"return redis.acl_check_cmd('set', 'yy', 1)", "$-1\r\n"},
		{"return redis.acl_check_cmd('invalid-cmd', 'arg')", "-ERR Invalid command passed to redis.acl_check_cmd()"},
	} {
		reply, _ := evalP(t, st, p, Step{Body: []byte(c.body)})
		if !strings.HasPrefix(string(reply), c.want) {
			t.Errorf("%s: %q, want %q", c.body, reply, c.want)
		}
	}
	if reply, _ := eval(t, st, "return redis.acl_check_cmd('hset', 'xx', 'f', 1)", nil); string(reply) != ":1\r\n" {
		t.Errorf("without users: %q", reply)
	}
}
