package rdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var updateGolden = flag.Bool("update", false, "rewrite "+goldenFile+" from a live redis-server")

// goldenFile holds what redis-server 7.0.15 answered to DUMP for
// liveCases, so the payloads are checked where no server is installed
// and seed FuzzParse. go test -run TestRedisPayloads -update rewrites it.
const goldenFile = "testdata/redis-7.0.15-dump.txt"

// liveCase is a key redis-server builds, the value it should hold, the
// encoding Redis chooses for it and the RDB type DUMP writes for that.
type liveCase struct {
	key   string
	setup [][]any // commands that make the key
	want  *Value
	enc   string
	typ   byte
}

func liveCases() []liveCase {
	long := strings.Repeat("0123456789", 7) // over the 64 bytes a listpack value may hold
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i)
	}
	var cs []liveCase
	str := func(key, s, enc string) {
		cs = append(cs, liveCase{key, [][]any{{"SET", key, s}}, &Value{Kind: String, Str: []byte(s)}, enc, typeString})
	}
	str("str:raw", "hello, world", "embstr")
	str("str:empty", "", "embstr")
	str("str:int8", "-7", "int")
	str("str:int16", "12345", "int")
	str("str:int32", "-2000000000", "int")
	str("str:int64", "9223372036854775807", "int")
	str("str:leading-zero", "007", "embstr")
	str("str:lzf", strings.Repeat("abcdefgh", 100), "raw")
	str("str:run", strings.Repeat("a", 1<<20), "raw")
	str("str:binary", string(all)+string(all), "raw")

	// Collections are written in batches; set and zset order is Redis's.
	coll := func(key, cmd string, kind Kind, enc string, typ byte, items ...string) {
		c := liveCase{key: key, want: &Value{Kind: kind}, enc: enc, typ: typ}
		step := 1
		if kind == ZSet || kind == Hash {
			step = 2
		}
		for i := 0; i < len(items); i += 500 * step {
			args := []any{cmd, key}
			for _, s := range items[i:min(i+500*step, len(items))] {
				args = append(args, s)
			}
			c.setup = append(c.setup, args)
		}
		for i := 0; i < len(items); i += step {
			switch kind {
			case List, Set:
				c.want.Elems = append(c.want.Elems, []byte(items[i]))
			case ZSet:
				f, _ := strconv.ParseFloat(items[i], 64)
				c.want.Scores = append(c.want.Scores, ScoredMember{[]byte(items[i+1]), f})
			case Hash:
				c.want.Pairs = append(c.want.Pairs, Pair{[]byte(items[i]), []byte(items[i+1])})
			}
		}
		cs = append(cs, c)
	}
	small := append([]string{"", "a", long, strings.Repeat("y", 5000)}, zlInts...)
	coll("list:small", "RPUSH", List, "quicklist", typeListQuicklist2, small...)
	// Entries of 16383 and 16382 bytes, each side of a back-length size.
	coll("list:edge", "RPUSH", List, "quicklist", typeListQuicklist2,
		strings.Repeat("e", 16378), strings.Repeat("f", 16377), "g")
	var big []string
	for i := range 1000 { // several nodes, the inner ones compressed
		big = append(big, fmt.Sprintf("element number %06d of the big list", i))
	}
	coll("list:big", "RPUSH", List, "quicklist", typeListQuicklist2, big...)
	coll("list:plain", "RPUSH", List, "quicklist", typeListQuicklist2, "small", strings.Repeat("P", 2000), "small 2")
	cs[len(cs)-1].setup = append([][]any{{"DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000"}},
		append(cs[len(cs)-1].setup, []any{"DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0"})...)

	coll("set:intset16", "SADD", Set, "intset", typeSetIntset, "1", "2", "3", "-5", "100")
	coll("set:intset64", "SADD", Set, "intset", typeSetIntset, "1", "9223372036854775807", "-9223372036854775808")
	coll("set:ht", "SADD", Set, "hashtable", typeSet, "a", "b", "1", "", long)
	var ints []string
	for i := range 600 { // past set-max-intset-entries
		ints = append(ints, strconv.Itoa(i*i-1000))
	}
	coll("set:big", "SADD", Set, "hashtable", typeSet, ints...)

	coll("zset:listpack", "ZADD", ZSet, "listpack", typeZSetListpack, "1", "a", "2.5", "b", "-inf", "c", "inf", "d",
		"1e300", "e", "0", "f", "-3", "g", "3.141592653589793", "h", "0.1", "i", "70000", "k", "5", "")
	coll("zset:long-member", "ZADD", ZSet, "skiplist", typeZSet2, "1", long, "2", "b")
	var zs []string
	for i := range 200 { // past zset-max-listpack-entries
		zs = append(zs, strconv.FormatFloat(float64(i)/7, 'g', -1, 64), fmt.Sprint("m", i))
	}
	coll("zset:big", "ZADD", ZSet, "skiplist", typeZSet2, zs...)

	coll("hash:listpack", "HSET", Hash, "listpack", typeHashListpack, "f", "v", "num", "123", "neg", "-77", "empty", "", "", "x")
	coll("hash:long-value", "HSET", Hash, "hashtable", typeHash, "f", long, "g", "1")
	var hs []string
	for i := range 600 { // past hash-max-listpack-entries
		hs = append(hs, fmt.Sprint("field", i), strconv.Itoa(i))
	}
	coll("hash:big", "HSET", Hash, "hashtable", typeHash, hs...)
	return cs
}

// startRedis runs a redis-server of its own for the test, or skips where
// none is installed (fails instead in CI, which installs it). The server
// is stopped when the test ends.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but redis-server is not installed: %v", err)
		}
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); skipping the live DUMP/RESTORE checks")
	}
	// Another process may take the free port between our choosing it
	// and the server binding it; then the server exits, and we retry.
	var failure string
	for range 3 {
		c, msg := tryRedis(t, bin)
		if c != nil {
			return c
		}
		failure = msg
	}
	t.Fatal(failure)
	return nil
}

func tryRedis(t *testing.T, bin string) (*redis.Client, string) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--logfile", logPath, "--daemonize", "no",
		"--enable-debug-command", "yes",
		// RESTORE then checks payloads as deeply as Parse does, so Dump's
		// output and the test encoders face Redis's strictest loader.
		"--sanitize-dump-payload", "yes",
		// Inner quicklist nodes are then LZF-compressed in memory, and
		// DUMP writes them as they are.
		"--list-compress-depth", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	stop := func() {
		c.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return c, ""
		}
		select {
		case werr := <-exited:
			exited <- werr // for stop
			stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Sprintf("redis-server exited (%v) before answering:\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Sprintf("redis-server on port %d did not answer PING: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readBack reads a key with the commands a client would use.
func readBack(ctx context.Context, c *redis.Client, key string) (*Value, error) {
	typ, err := c.Type(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "string":
		s, err := c.Get(ctx, key).Result()
		return &Value{Kind: String, Str: []byte(s)}, err
	case "list":
		ss, err := c.LRange(ctx, key, 0, -1).Result()
		return &Value{Kind: List, Elems: strs(ss...)}, err
	case "set":
		ss, err := c.SMembers(ctx, key).Result()
		return &Value{Kind: Set, Elems: strs(ss...)}, err
	case "zset":
		zs, err := c.ZRangeWithScores(ctx, key, 0, -1).Result()
		v := &Value{Kind: ZSet}
		for _, z := range zs {
			v.Scores = append(v.Scores, ScoredMember{[]byte(z.Member.(string)), z.Score})
		}
		return v, err
	case "hash":
		m, err := c.HGetAll(ctx, key).Result()
		v := &Value{Kind: Hash}
		for f, val := range m {
			v.Pairs = append(v.Pairs, Pair{[]byte(f), []byte(val)})
		}
		return v, err
	}
	return nil, fmt.Errorf("key %q has type %q", key, typ)
}

// quicklistNodes lists a RDB_TYPE_LIST_QUICKLIST_2 payload's node
// containers, and which nodes are LZF-compressed.
func quicklistNodes(t *testing.T, p []byte) (containers []uint64, lzf []bool) {
	d := &decoder{buf: p[1 : len(p)-footerLen], budget: DefaultMaxBytes}
	n, err := d.plainLength()
	for i := uint64(0); err == nil && i < n; i++ {
		var c uint64
		if c, err = d.plainLength(); err == nil {
			containers = append(containers, c)
			lzf = append(lzf, d.off < len(d.buf) && d.buf[d.off] == 0xc0|encLZF)
			_, _, err = d.str()
		}
	}
	if err != nil {
		t.Fatalf("walking quicklist nodes: %v", err)
	}
	return containers, lzf
}

func TestRedisPayloads(t *testing.T) {
	c := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cases := liveCases()
	for _, lc := range cases {
		for _, args := range lc.setup {
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatalf("%s: %v: %v", lc.key, args[:2], err)
			}
		}
	}
	golden := map[string]string{}
	for _, lc := range cases {
		if enc, err := c.ObjectEncoding(ctx, lc.key).Result(); err != nil || enc != lc.enc {
			t.Errorf("%s: OBJECT ENCODING = %q, %v; want %q", lc.key, enc, err, lc.enc)
		}
		s, err := c.Dump(ctx, lc.key).Result()
		if err != nil {
			t.Fatalf("%s: DUMP: %v", lc.key, err)
		}
		p := []byte(s)
		golden[lc.key] = hex.EncodeToString(p)
		checkRedisPayload(t, lc, p)
		if lc.want.Kind == String && len(lc.want.Str) <= 20 {
			// Too short for Redis to compress: Dump writes Redis's bytes.
			if d := Dump(lc.want); !bytes.Equal(d, p) {
				t.Errorf("%s: Dump = %x, Redis DUMP = %x", lc.key, d, p)
			}
		}
		switch lc.key {
		case "str:run":
			// Redis's LZF expands this run more than 64 times, so a
			// tighter cap than lzfMaxRatio would refuse a real payload.
			d := &decoder{buf: p[2:]}
			clen, _ := d.plainLength()
			ulen, _ := d.plainLength()
			if p[1] != 0xc0|encLZF || float64(ulen)/float64(clen) < 64 {
				t.Errorf("%s: compressed %d to %d bytes", lc.key, ulen, clen)
			}
			t.Logf("%s: Redis compressed %d bytes to %d (%.1fx)", lc.key, ulen, clen, float64(ulen)/float64(clen))
		case "str:lzf":
			if p[1] != 0xc0|encLZF {
				t.Errorf("%s: not LZF-compressed", lc.key)
			}
		case "list:plain":
			if containers, _ := quicklistNodes(t, p); !slices.Contains(containers, containerPlain) {
				t.Errorf("%s: no plain node among %v", lc.key, containers)
			}
		case "list:big":
			if _, lzf := quicklistNodes(t, p); !slices.Contains(lzf, true) {
				t.Errorf("%s: no compressed node", lc.key)
			}
		}

		// And back: Dump's payload restores to the same value, which
		// Redis then dumps in its own encoding, which Parse reads.
		back := "back:" + lc.key
		if err := c.RestoreReplace(ctx, back, 0, string(Dump(lc.want))).Err(); err != nil {
			t.Errorf("%s: RESTORE of Dump: %v", lc.key, err)
			continue
		}
		got, err := readBack(ctx, c, back)
		if err != nil || describe(got) != describe(lc.want) {
			t.Errorf("%s: restored from Dump, Redis holds\n%s (%v)\nwant %s", lc.key, describe(got), err, describe(lc.want))
		}
		s, err = c.Dump(ctx, back).Result()
		if err != nil {
			t.Fatal(err)
		}
		if v, err := Parse([]byte(s)); err != nil || describe(v) != describe(lc.want) {
			t.Errorf("%s: Redis's DUMP of the restored key parses to %s, %v", lc.key, describe(v), err)
		}
	}
	if *updateGolden {
		writeGolden(t, golden)
	}
}

func checkRedisPayload(t *testing.T, lc liveCase, p []byte) {
	t.Helper()
	if p[0] != lc.typ {
		t.Errorf("%s: DUMP wrote type %d, want %d", lc.key, p[0], lc.typ)
	}
	v, err := Parse(p)
	if err != nil {
		t.Errorf("%s: Parse(DUMP) = %v", lc.key, err)
		return
	}
	if describe(v) != describe(lc.want) {
		t.Errorf("%s: Parse(DUMP) =\n%s\nwant %s", lc.key, describe(v), describe(lc.want))
	}
}

// footerAlone is a payload of a version and its valid checksum only.
func footerAlone() []byte {
	p := binary.LittleEndian.AppendUint16(nil, Version)
	return binary.LittleEndian.AppendUint64(p, crc64(0, p))
}

func writeGolden(t *testing.T, golden map[string]string) {
	var keys []string
	for k := range golden {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# DUMP payloads from redis-server 7.0.15 for liveCases (redis_test.go); key, then hex.\n")
	b.WriteString("# Regenerate: go test ./internal/rdb -run TestRedisPayloads -update\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k, golden[k])
	}
	if err := os.WriteFile(goldenFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(tb testing.TB) map[string][]byte {
	f, err := os.Open(goldenFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, h, _ := strings.Cut(line, " ")
		p, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatalf("%s: %v", k, err)
		}
		out[k] = p
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// The recorded payloads parse as the live ones did, without a server.
func TestRedisGoldenPayloads(t *testing.T) {
	golden := readGolden(t)
	for _, lc := range liveCases() {
		p, ok := golden[lc.key]
		if !ok {
			t.Errorf("%s: not in %s", lc.key, goldenFile)
			continue
		}
		checkRedisPayload(t, lc, p)
	}
}

func TestRedisLoadsLegacyEncodings(t *testing.T) {
	c := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, lc := range legacyCases() {
		key := "legacy:" + lc.name
		err := c.RestoreReplace(ctx, key, 0, string(lc.payload)).Err()
		if !lc.redis {
			// Refused for its RDB version (11) before its type (20).
			if err == nil || err.Error() != "ERR "+ErrVersionOrChecksum.Error() {
				t.Errorf("%s: Redis 7.0 RESTORE = %v, want a version error", lc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: RESTORE: %v", lc.name, err)
			continue
		}
		got, err := readBack(ctx, c, key)
		if err != nil || describe(got) != describe(lc.want) {
			t.Errorf("%s: Redis holds\n%s (%v)\nwant %s", lc.name, describe(got), err, describe(lc.want))
		}
	}
}

// Every payload Parse refuses, Redis refuses too, with the same reply,
// except where Parse is knowingly stricter.
func TestRedisRefusesHostilePayloads(t *testing.T) {
	stricter := map[string]string{ // and Redis accepts
		"trailing bytes":          "RESTORE ignores bytes between the value and the footer",
		"string past the end":     "Redis reads on into the footer's bytes",
		"truncated int32":         "Redis reads on into the footer's bytes",
		"zset truncated score":    "Redis reads on into the footer's bytes",
		"zset text not a number":  "Redis's strtod reads the longest number prefix and ignores the rest",
		"listpack zset bad score": "Redis never parses listpack scores while loading",
		"listpack zset NaN":       "Redis never parses listpack scores while loading",
		"zipmap early end":        "Redis stops at the first terminator and ignores what follows",
	}
	c := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := Dump(&Value{Kind: String, Str: []byte("v")})
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	cases := append(hostileCases(),
		hostileCase{name: "version 12", payload: payloadOf(typeString, []byte("\x01v"), 12)},
		hostileCase{name: "bad crc", payload: badCRC},
		hostileCase{name: "footer alone", payload: footerAlone()})
	for _, hc := range cases {
		_, perr := Parse(hc.payload)
		rerr := c.RestoreReplace(ctx, "hostile", 0, string(hc.payload)).Err()
		if why, ok := stricter[hc.name]; ok {
			if rerr != nil {
				t.Errorf("%s: Redis now refuses it too (%v): not stricter (%s)", hc.name, rerr, why)
			}
			continue
		}
		want := ErrBadFormat.Error()
		if errors.Is(perr, ErrVersionOrChecksum) {
			want = ErrVersionOrChecksum.Error()
		}
		if rerr == nil || rerr.Error() != "ERR "+want {
			t.Errorf("%s: Redis RESTORE = %v, Parse = %v", hc.name, rerr, perr)
		}
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis-server did not survive the hostile payloads: %v", err)
	}
}
