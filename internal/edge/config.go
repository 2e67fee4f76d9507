package edge

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/memory"
	"github.com/kintsu/kintsu/internal/resp"
	"github.com/kintsu/kintsu/internal/statemachine"
)

// CONFIG GET reports the node's settings in Redis's names and units;
// CONFIG SET changes the runtime-tunable ones for the whole cluster: the
// node checks them, keeps them in the metadata group
// (statemachine.ConfigSet) and applies them before it answers; the other
// nodes apply them at their next poll (WatchUsers). Flags set a node's
// values at start, until the cluster's settings name them. Parameters
// that tune Redis's memory encodings, which Kintsu does not have, are
// accepted and reported back with no effect, so tools and test suites that
// set them run on; anything else is refused with Redis's error.

// configValues are fixed settings CONFIG GET reports, enough for tools
// such as redis-benchmark that read them at start.
var configValues = [][2]string{
	{"appendfsync", "always"},
	{"appendonly", "yes"},
	{"databases", "1"},
	{"proto-max-bulk-len", strconv.Itoa(kv.MaxValueBytes)},
	{"save", ""},
	{"cluster-enabled", "yes"},
}

// encodingParams are Redis's memory-encoding thresholds and similar
// knobs with no meaning in Kintsu, with Redis's defaults.
var encodingParams = map[string]string{
	"hash-max-listpack-entries": "128", "hash-max-listpack-value": "64",
	"hash-max-ziplist-entries": "128", "hash-max-ziplist-value": "64",
	"zset-max-listpack-entries": "128", "zset-max-listpack-value": "64",
	"zset-max-ziplist-entries": "128", "zset-max-ziplist-value": "64",
	"set-max-intset-entries": "512", "set-max-listpack-entries": "128", "set-max-listpack-value": "64",
	"list-max-listpack-size": "-2", "list-max-ziplist-size": "-2", "list-compress-depth": "0",
	"stream-node-max-bytes": "4096", "stream-node-max-entries": "100",
	"hll-sparse-max-bytes": "3000", "activerehashing": "yes", "hz": "10",
	"lazyfree-lazy-eviction": "no", "lazyfree-lazy-expire": "no", "lazyfree-lazy-server-del": "no",
	"lazyfree-lazy-user-del": "no", "lazyfree-lazy-user-flush": "no",
	"lua-time-limit": "5000", "busy-reply-threshold": "5000",
	"slowlog-log-slower-than": "10000", "slowlog-max-len": "128",
	"latency-tracking": "yes", "latency-monitor-threshold": "0",
}

// configOverrides are the values CONFIG SET gave encodingParams.
type configOverrides struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *configOverrides) get(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[name]; ok {
		return v
	}
	return encodingParams[name]
}

func (c *configOverrides) set(name, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[name] = v
}

func (f *Server) configAll() [][2]string {
	out := append(append([][2]string(nil), configValues...), f.limitConfig()...)
	out = append(out, [2]string{"notify-keyspace-events", formatNotify(int(f.notifyFlags.Load()))})
	for name := range encodingParams {
		out = append(out, [2]string{name, f.config.get(name)})
	}
	return out
}

func cmdConfig(f *Server, args [][]byte, _ *connState) []byte {
	switch lower(args[1]) {
	case "get":
		if len(args) < 3 {
			return errArity([][]byte{[]byte("config|get")})
		}
		var out [][2]string
		for _, kvp := range f.configAll() {
			for _, pat := range args[2:] {
				if ok, _ := path.Match(lower(pat), kvp[0]); ok {
					out = append(out, kvp)
					break
				}
			}
		}
		b := resp.AppendArrayHeader(nil, 2*len(out))
		for _, kvp := range out {
			b = resp.AppendBulkString(b, kvp[0])
			b = resp.AppendBulkString(b, kvp[1])
		}
		return b
	case "set":
		if len(args) < 4 || len(args)%2 != 0 {
			return errArity([][]byte{[]byte("config|set")})
		}
		return f.configSet(args[2:])
	case "resetstat":
		if len(args) != 2 {
			return errArity([][]byte{[]byte("config|resetstat")})
		}
		f.stats.reset()
		return resp.AppendSimple(nil, "OK")
	case "rewrite":
		return resp.AppendError(nil, "ERR The server is running without a config file")
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG HELP.", args[1]))
}

// configSet checks name-value pairs, all or none, as Redis 7 does, and
// makes them the cluster's.
func (f *Server) configSet(pairs [][]byte) []byte {
	if reply := f.applyConfig(pairs, true); reply != nil {
		return reply
	}
	cmd := [][]byte{[]byte(statemachine.CmdConfigSet)}
	for i := 0; i+1 < len(pairs); i += 2 {
		cmd = append(cmd, []byte(lower(pairs[i])), pairs[i+1])
	}
	return f.metaPropose(cmd, f.readConfig)
}

// readConfig reads the cluster's settings linearizably and applies them
// to this node.
func (f *Server) readConfig(ctx context.Context) error {
	b, null, err := f.readMetaRecord(ctx, statemachine.ConfigKey)
	if err != nil || null {
		return err
	}
	c, err := statemachine.UnmarshalConfig(b)
	if err != nil {
		return err
	}
	f.configMu.Lock()
	defer f.configMu.Unlock()
	if c.Version <= f.configVersion.Load() {
		return nil
	}
	var pairs [][]byte
	for _, p := range c.Pairs() {
		pairs = append(pairs, []byte(p[0]), []byte(p[1]))
	}
	// A setting this build does not know (set by a newer node) is
	// skipped, not a reason to ignore the rest.
	for i := 0; i+1 < len(pairs); i += 2 {
		f.applyConfig(pairs[i:i+2], false)
	}
	f.configVersion.Store(c.Version)
	return nil
}

// pollConfig reads the settings' version and, when it moved, the
// settings.
func (f *Server) pollConfig(ctx context.Context) error {
	ver, err := f.metaVersion(ctx, statemachine.ConfigVersionKey)
	if err != nil || ver == f.configVersion.Load() {
		return err
	}
	return f.readConfig(ctx)
}

// applyConfig checks pairs and, unless dry, applies them to this node;
// the reply is Redis's refusal, nil when they are good.
func (f *Server) applyConfig(pairs [][]byte, dry bool) []byte {
	next := *f.lim.get()
	var enc [][2]string
	var notify *int
	fail := func(name, why string) []byte {
		return resp.AppendError(nil, fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %s", name, why))
	}
	seen := map[string]bool{}
	for i := 0; i < len(pairs); i += 2 {
		name, val := lower(pairs[i]), string(pairs[i+1])
		if seen[name] {
			return fail(name, "duplicate parameter")
		}
		seen[name] = true
		num := func() (int64, bool) { n, err := strconv.ParseInt(val, 10, 64); return n, err == nil && n >= 0 }
		switch name {
		case "maxmemory":
			n, err := memory.ParseBytes(val)
			if err != nil || n < 0 {
				return fail(name, "argument must be a memory value")
			}
			next.MaxMemory = uint64(n)
		case "maxmemory-clients":
			n, err := memory.ParseBytes(val)
			if err != nil || n < 0 {
				return fail(name, "argument must be a memory value")
			}
			next.ReplyBudget = n
		case "maxclients":
			n, ok := num()
			if !ok || n < 1 {
				return fail(name, "argument couldn't be parsed into an integer")
			}
			next.MaxClients = int(n)
		case "timeout":
			n, ok := num()
			if !ok {
				return fail(name, "argument couldn't be parsed into an integer")
			}
			next.IdleTimeout = time.Duration(n) * time.Second
		case "notify-keyspace-events":
			flags, ok := parseNotify(val)
			if !ok {
				return fail(name, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
			}
			notify = &flags
		case "maxmemory-policy":
			if lower([]byte(val)) != "noeviction" {
				return fail(name, "Kintsu never evicts keys: only noeviction")
			}
		case "latency-monitor-threshold":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return fail(name, "argument couldn't be parsed into an integer")
			}
			enc = append(enc, [2]string{name, val})
		case "slowlog-log-slower-than", "slowlog-max-len":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || name == "slowlog-max-len" && (n < 0 || n > slowlogCap) {
				return fail(name, "argument couldn't be parsed into an integer")
			}
			enc = append(enc, [2]string{name, val})
		case "appendonly", "appendfsync", "save":
			if want := map[string]string{"appendonly": "yes", "appendfsync": "always", "save": ""}[name]; lower([]byte(val)) != want {
				return fail(name, "every write is replicated and fsync'd before its reply; this cannot change")
			}
		default:
			if _, ok := encodingParams[name]; !ok {
				return resp.AppendError(nil, fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%s'", strings.ToLower(string(pairs[i]))))
			}
			enc = append(enc, [2]string{name, val})
		}
	}
	if dry {
		return nil
	}
	if notify != nil {
		f.notifyFlags.Store(int32(*notify))
	}
	f.lim.cur.Store(&next)
	for _, e := range enc {
		f.config.set(e[0], e[1])
		f.slowlog.setting(e[0], e[1])
		f.latency.setting(e[0], e[1])
	}
	return nil
}
