package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kintsu/kintsu/internal/api"
	"github.com/kintsu/kintsu/internal/command"
	"github.com/kintsu/kintsu/internal/kv"
	"github.com/kintsu/kintsu/internal/pubsub"
	"github.com/kintsu/kintsu/internal/resp"
)

// INFO answers Redis's sections with Redis's field names, so monitoring
// tools and client libraries (redis-py reads arch_bits) find what they
// look for. What Kintsu does not keep (keyspace hits, CPU of children,
// replication offsets) reads as Redis's zero. The keyspace line counts
// the whole cluster's keys, as DBSIZE does.

func init() {
	command.Register(
		connSpec("memory", -2, command.Server, cmdMemory),
		connSpec("object", -2, command.Keyspace, cmdObject),
		connSpec("time", 1, command.Server, cmdTime),
		connSpec("lastsave", 1, command.Server, cmdLastSave),
		connSpec("save", 1, command.Server, cmdSave),
		connSpec("bgsave", -1, command.Server, cmdSave),
		connSpec("shutdown", -1, command.Server, cmdShutdown),
	)
}

// stats are the node's counters, reset by CONFIG RESETSTAT.
type stats struct {
	started     time.Time
	runID       string
	commands    atomic.Int64 // commands processed
	connections atomic.Int64 // connections accepted
	rejected    atomic.Int64 // connections refused by maxclients or protected mode
	errors      atomic.Int64 // error replies
	perCommand  sync.Map     // command name -> *commandStat
	perError    sync.Map     // error code -> *atomic.Int64
	codes       atomic.Int64 // distinct codes in perError, at most maxErrorCodes
	errs        errorCounts  // by command and code (errorstats.go)
}

// maxErrorCodes bounds INFO errorstats' codes, as Redis does: a script
// can make up any; further ones count as OTHER.
const maxErrorCodes = 128

// commandStat is INFO commandstats' line for one command.
type commandStat struct {
	calls, failed atomic.Int64
	usec          atomic.Int64                 // time in all calls measured (latency.go)
	hist          [latencyBuckets]atomic.Int64 // calls by time (latency.go)
}

// count records one reply to a command (spec nil: one that did not
// decode; name is what the client sent as its name, authed whether the
// connection is authenticated): its call, and whether it was an error,
// under the error's code.
func (s *stats) count(spec *command.Spec, name []byte, authed bool, reply []byte) {
	isErr := len(reply) > 0 && reply[0] == '-'
	if isErr {
		s.errors.Add(1)
		code := reply[1:]
		if i := bytes.IndexAny(code, " \r"); i >= 0 {
			code = code[:i]
		}
		key := string(code)
		c, ok := s.perError.Load(key)
		if !ok {
			if s.codes.Add(1) > maxErrorCodes {
				s.codes.Add(-1)
				key = "OTHER"
			}
			var loaded bool
			if c, loaded = s.perError.LoadOrStore(key, new(atomic.Int64)); loaded && key != "OTHER" {
				s.codes.Add(-1)
			}
		}
		c.(*atomic.Int64).Add(1)
		s.errs.add(spec, name, authed, key)
	}
	if spec == nil || spec.Is(command.Internal) {
		return
	}
	st, ok := s.perCommand.Load(spec.Name)
	if !ok {
		st, _ = s.perCommand.LoadOrStore(spec.Name, &commandStat{})
	}
	st.(*commandStat).calls.Add(1)
	if isErr {
		st.(*commandStat).failed.Add(1)
	}
}

func newStats() *stats {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return &stats{started: time.Now(), runID: hex.EncodeToString(b)}
}

func (s *stats) reset() {
	s.commands.Store(0)
	s.connections.Store(0)
	s.rejected.Store(0)
	s.errors.Store(0)
	s.perCommand.Clear()
	s.perError.Clear()
	s.codes.Store(0)
	s.errs.reset()
}

// infoSections are INFO's sections in Redis's order; default marks those
// INFO without arguments shows.
var infoSections = []struct {
	name    string
	dflt    bool
	section func(f *Server, b *strings.Builder)
}{
	{"server", true, (*Server).infoServer},
	{"clients", true, (*Server).infoClients},
	{"memory", true, func(f *Server, b *strings.Builder) { b.WriteString(f.memoryInfo()) }},
	{"persistence", true, (*Server).infoPersistence},
	{"stats", true, (*Server).infoStats},
	{"replication", true, (*Server).infoReplication},
	{"cpu", true, (*Server).infoCPU},
	{"modules", true, func(_ *Server, b *strings.Builder) { b.WriteString("# Modules\r\n\r\n") }},
	{"commandstats", false, (*Server).infoCommandStats},
	{"errorstats", true, (*Server).infoErrorStats},
	{"cluster", true, func(_ *Server, b *strings.Builder) { b.WriteString("# Cluster\r\ncluster_enabled:1\r\n\r\n") }},
	{"keyspace", true, (*Server).infoKeyspace},
	{"kintsu", true, (*Server).infoKintsu},
}

func cmdInfo(f *Server, args [][]byte, _ *connState) []byte {
	want := map[string]bool{}
	all := false
	for _, a := range args[1:] {
		switch s := lower(a); s {
		case "all", "everything":
			all = true
		case "default":
			for _, sec := range infoSections {
				want[sec.name] = want[sec.name] || sec.dflt
			}
		default:
			want[s] = true
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if all || len(args) == 1 && sec.dflt || want[sec.name] {
			sec.section(f, &b)
		}
	}
	return resp.AppendBulkString(nil, strings.TrimSuffix(b.String(), "\r\n"))
}

func (f *Server) infoServer(b *strings.Builder) {
	up := time.Since(f.stats.started)
	exe, _ := os.Executable()
	fmt.Fprintf(b, "# Server\r\nredis_version:%s\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:cluster\r\n", redisVersion)
	fmt.Fprintf(b, "os:%s %s\r\narch_bits:%d\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\n", runtime.GOOS, runtime.GOARCH, 32<<(^uint(0)>>63))
	fmt.Fprintf(b, "process_id:%d\r\nprocess_supervised:no\r\nrun_id:%s\r\ntcp_port:%s\r\nserver_time_usec:%d\r\n", os.Getpid(), f.stats.runID, portOf(f.cfg.RESPAddr), time.Now().UnixMicro())
	fmt.Fprintf(b, "uptime_in_seconds:%d\r\nuptime_in_days:%d\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:%d\r\nexecutable:%s\r\nconfig_file:\r\nio_threads_active:0\r\n", int64(up/time.Second), int64(up/(24*time.Hour)), time.Now().Unix()&(1<<24-1), exe)
	fmt.Fprintf(b, "kintsu_version:%s\r\n\r\n", api.Version)
}

func (f *Server) infoClients(b *strings.Builder) {
	fmt.Fprintf(b, "# Clients\r\nconnected_clients:%d\r\ncluster_connections:0\r\nmaxclients:%d\r\n", f.connCount(), f.lim.get().MaxClients)
	fmt.Fprintf(b, "client_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:%d\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n\r\n", f.blockedClients.Load())
}

func (f *Server) infoPersistence(b *strings.Builder) {
	// Every acknowledged write is in the replicated, fsync'd log: to a
	// tool, an AOF with appendfsync always that never rewrites.
	fmt.Fprintf(b, "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\n")
	fmt.Fprintf(b, "rdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:%d\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\n", f.stats.started.Unix())
	b.WriteString("aof_enabled:1\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_last_write_status:ok\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n\r\n")
}

func (f *Server) infoStats(b *strings.Builder) {
	s := f.stats
	channels := len(f.pubsub.Channels(pubsub.Channel, nil, maxPubSubChannels))
	fmt.Fprintf(b, "# Stats\r\ntotal_connections_received:%d\r\ntotal_commands_processed:%d\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:0\r\ntotal_net_output_bytes:0\r\n", s.connections.Load(), s.commands.Load())
	fmt.Fprintf(b, "rejected_connections:%d\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:0\r\nevicted_keys:0\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\n", s.rejected.Load())
	fmt.Fprintf(b, "pubsub_channels:%d\r\npubsub_patterns:%d\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\ntotal_error_replies:%d\r\ndump_payload_sanitizations:0\r\n\r\n", channels, len(f.pubsub.Patterns()), s.errors.Load())
}

func (f *Server) infoReplication(b *strings.Builder) {
	// Every node serves every key (forwarding to the partition's leader):
	// to a Redis tool, each is a master.
	fmt.Fprintf(b, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:%s\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n\r\n", f.stats.runID)
}

func (f *Server) infoCPU(b *strings.Builder) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	secs := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	fmt.Fprintf(b, "# CPU\r\nused_cpu_sys:%.6f\r\nused_cpu_user:%.6f\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n\r\n", secs(ru.Stime), secs(ru.Utime))
}

func (f *Server) infoKeyspace(b *strings.Builder) {
	b.WriteString("# Keyspace\r\n")
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	if n, err := f.keyCount(ctx); err == nil && n > 0 {
		fmt.Fprintf(b, "db0:keys=%d,expires=0,avg_ttl=0\r\n", n)
	}
	b.WriteString("\r\n")
}

func (f *Server) infoKintsu(b *strings.Builder) {
	local, led := f.cfg.View.Replicas()
	fmt.Fprintf(b, "# Kintsu\r\nnode_id:%d\r\ncluster_id:%s\r\npartitions:%d\r\nreplicas:%d\r\nlocal_replicas:%d\r\nleaders_held:%d\r\n\r\n",
		f.cfg.NodeID, f.cfg.ClusterID, f.cfg.Partitions, f.cfg.Replicas, local, led)
}

// cmdMemory answers MEMORY USAGE (from the key's partition), STATS,
// DOCTOR, MALLOC-STATS, PURGE and HELP.
func cmdMemory(f *Server, args [][]byte, _ *connState) []byte {
	switch sub := lower(args[1]); {
	case sub == "usage" && (len(args) == 3 || len(args) == 5 && lower(args[3]) == "samples"):
		if len(args) == 5 {
			if _, ok := kv.ParseInt(args[4]); !ok {
				return resp.AppendError(nil, kv.ErrNotInteger)
			}
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
		defer cancel()
		reply, err := f.readOne(ctx, f.partitionOf(args[2]), [][]byte{[]byte(kv.OpMemUsage), args[2]})
		if err != nil {
			return ErrorReply(err)
		}
		return reply
	case sub == "stats" && len(args) == 2:
		var used uint64
		if u := f.lim.get().UsedMemory; u != nil {
			used = u()
		}
		out := resp.AppendArrayHeader(nil, 4)
		out = resp.AppendInt(resp.AppendBulkString(out, "peak.allocated"), int64(used))
		return resp.AppendInt(resp.AppendBulkString(out, "total.allocated"), int64(used))
	case sub == "doctor" && len(args) == 2:
		return resp.AppendBulkString(nil, "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.")
	case sub == "malloc-stats" && len(args) == 2:
		return resp.AppendBulkString(nil, "Stats not supported for the current allocator")
	case sub == "purge" && len(args) == 2:
		return resp.AppendSimple(nil, "OK")
	}
	return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try MEMORY HELP.", args[1]))
}

// cmdObject answers OBJECT ENCODING (from the key's partition), FREQ,
// IDLETIME, REFCOUNT and HELP. Kintsu keeps no access times or
// frequencies: IDLETIME answers 0, FREQ Redis's error without an LFU
// policy (Kintsu never evicts).
func cmdObject(f *Server, args [][]byte, _ *connState) []byte {
	sub := lower(args[1])
	if sub == "help" && len(args) == 2 {
		lines := []string{
			"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ENCODING <key>", "    Return the kind of internal representation used in order to store the value", "    associated with a <key>.",
			"FREQ <key>", "    Return the access frequency index of the <key>. The returned integer is", "    proportional to the logarithm of the recent access frequency of the key.",
			"IDLETIME <key>", "    Return the idle time of the <key>, that is the approximated number of", "    seconds elapsed since the last access to the key.",
			"REFCOUNT <key>", "    Return the number of references of the value associated with the specified", "    <key>.",
			"HELP", "    Print this help.",
		}
		return appendHelp(lines)
	}
	if len(args) != 3 || (sub != "encoding" && sub != "freq" && sub != "idletime" && sub != "refcount") {
		return resp.AppendError(nil, fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try OBJECT HELP.", args[1]))
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.RequestTimeout)
	defer cancel()
	reply, err := f.readOne(ctx, f.partitionOf(args[2]), [][]byte{[]byte(kv.OpEncoding), args[2]})
	if err != nil {
		return ErrorReply(err)
	}
	if v, _, perr := resp.ParseValue(reply); perr != nil || v.Kind != '$' || v.Null {
		return reply // no such key: null, as Redis answers
	}
	switch sub {
	case "freq":
		return resp.AppendError(nil, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	case "idletime":
		return resp.AppendInt(nil, 0)
	case "refcount":
		return resp.AppendInt(nil, 1)
	}
	return reply
}

// cmdTime answers TIME from this node's clock: seconds and microseconds.
func cmdTime(_ *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 1 {
		return errArity(args)
	}
	now := time.Now()
	out := resp.AppendArrayHeader(nil, 2)
	out = resp.AppendBulkString(out, strconv.FormatInt(now.Unix(), 10))
	return resp.AppendBulkString(out, strconv.Itoa(now.Nanosecond()/1000))
}

// cmdLastSave answers LASTSAVE: every write is durable when answered, so
// the node's start stands for the last save.
func cmdLastSave(f *Server, args [][]byte, _ *connState) []byte {
	if len(args) != 1 {
		return errArity(args)
	}
	return resp.AppendInt(nil, f.stats.started.Unix())
}

// infoCommandStats is INFO commandstats: calls, time and failed calls
// per command (failed: answered with an error; Kintsu counts no rejected
// calls apart).
func (f *Server) infoCommandStats(b *strings.Builder) {
	b.WriteString("# Commandstats\r\n")
	var names []string
	f.stats.perCommand.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	slices.Sort(names)
	for _, n := range names {
		v, _ := f.stats.perCommand.Load(n)
		st := v.(*commandStat)
		calls, usec := st.calls.Load(), st.usec.Load()
		perCall := 0.0
		if calls > 0 {
			perCall = float64(usec) / float64(calls)
		}
		fmt.Fprintf(b, "cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=0,failed_calls=%d\r\n", n, calls, usec, perCall, st.failed.Load())
	}
	b.WriteString("\r\n")
}

// infoErrorStats is INFO errorstats: error replies per error code.
func (f *Server) infoErrorStats(b *strings.Builder) {
	b.WriteString("# Errorstats\r\n")
	var codes []string
	f.stats.perError.Range(func(k, _ any) bool { codes = append(codes, k.(string)); return true })
	slices.Sort(codes)
	for _, c := range codes {
		v, _ := f.stats.perError.Load(c)
		fmt.Fprintf(b, "errorstat_%s:count=%d\r\n", c, v.(*atomic.Int64).Load())
	}
	b.WriteString("\r\n")
}

// cmdSave answers SAVE and BGSAVE: every write is already replicated and
// fsync'd before its reply, so there is nothing to save.
func cmdSave(_ *Server, args [][]byte, _ *connState) []byte {
	if lower(args[0]) == "bgsave" {
		if len(args) > 2 || len(args) == 2 && lower(args[1]) != "schedule" {
			return resp.AppendError(nil, kv.ErrSyntax)
		}
		return resp.AppendSimple(nil, "Background saving started")
	}
	return resp.AppendSimple(nil, "OK")
}

// cmdShutdown refuses SHUTDOWN: a node is stopped by its operator (a
// signal, kintsu ctl), never by a client.
func cmdShutdown(_ *Server, _ [][]byte, _ *connState) []byte {
	return resp.AppendError(nil, "ERR SHUTDOWN is not served: stop a Kintsu node with SIGTERM (see docs/operations.md)")
}
